// The seccomp filter every dyno runs under, whatever the runtime: Docker's default profile
// (vendored in vendor/docker-seccomp, see its README), resolved for the dyno capability set
// (hardening.ts) and the host, then written in each runtime's own format:
//   runc   ociSeccomp()    -> config.json linux.seccomp (runtime-spec v1.0.2)
//   LXC    lxcSeccomp()    -> the file lxc.seccomp.profile names (policy version 2)
//   Docker dockerSeccomp() -> HostConfig.SecurityOpt ['seccomp=<json>'] (Docker's format)
// All three carry the same rules; test/unit/agent/runtime/seccomp.test.ts holds them to that and
// test/integration/agent/runtime/seccomp.test.ts shows each runtime loads its rendering.
//
// For the dyno set (no CAP_SYS_ADMIN) the profile refuses mount, umount, unshare, setns,
// clone with any namespace flag, clone3 (ENOSYS, so glibc falls back to clone), bpf,
// perf_event_open, keyctl, ptrace before kernel 4.8, and everything not listed (EPERM).
import { release } from 'node:os';
import { SlipwayError } from '../../../shared/errors.js';
import { DYNO_CAPABILITIES } from '../hardening.js';
import { loadDockerDefaultProfile, type DockerSeccompProfile } from './docker-format.js';
import { renderLxcPolicy } from './lxc-format.js';
import { EPERM, resolveProfile, type DynoSeccomp } from './resolve.js';

export type { DynoSeccomp, SeccompAction, SeccompArg, SeccompOp, SeccompRule } from './resolve.js';

const SOURCE = "Docker's default seccomp profile (vendor/docker-seccomp/default.json)";

/** Docker's default profile resolved for DYNO_CAPABILITIES, this host's kernel and `arch`
 * (Node's process.arch names). `kernel` is os.release() unless a test pins it. */
export function dynoSeccompRules(arch: string = process.arch, kernel: string = release()): DynoSeccomp {
  return resolveProfile(loadDockerDefaultProfile(), { capabilities: DYNO_CAPABILITIES, arch, kernel });
}

/** SeccompArch of the runtime-spec v1.0.2 schema (schema/defs-linux.json). RISCV64 came in
 * v1.1.0; a host arch outside this list is left to runc's default (the native arch). */
const OCI_102_ARCHES = new Set([
  'SCMP_ARCH_X86', 'SCMP_ARCH_X86_64', 'SCMP_ARCH_X32', 'SCMP_ARCH_ARM', 'SCMP_ARCH_AARCH64', 'SCMP_ARCH_MIPS',
  'SCMP_ARCH_MIPS64', 'SCMP_ARCH_MIPS64N32', 'SCMP_ARCH_MIPSEL', 'SCMP_ARCH_MIPSEL64', 'SCMP_ARCH_MIPSEL64N32',
  'SCMP_ARCH_PPC', 'SCMP_ARCH_PPC64', 'SCMP_ARCH_PPC64LE', 'SCMP_ARCH_S390', 'SCMP_ARCH_S390X', 'SCMP_ARCH_PARISC', 'SCMP_ARCH_PARISC64',
]);

export type OciSeccompArg = { index: number; value: number; valueTwo: number; op: string };
export type OciSyscall = { names: string[]; action: string; errnoRet?: number; args?: OciSeccompArg[] };
export type OciSeccomp = { defaultAction: string; architectures?: string[]; syscalls: OciSyscall[] };

/**
 * The OCI `linux.seccomp` object for runc's config.json. runtime-spec v1.0.2 (the version the
 * agent's configs declare and are validated against) defines defaultAction, flags,
 * architectures and syscalls {names, action, args}; errnoRet and defaultErrnoRet came in
 * v1.1.0 (runtime-spec #1041, #1087). So:
 * - the default errno is not written: runc's SCMP_ACT_ERRNO without one is EPERM, which is
 *   what Docker's profile asks for (any other default errno is refused here);
 * - ERRNO rules whose errno is EPERM are written without errnoRet, for the same reason;
 * - the one rule that needs another errno, clone3 -> ENOSYS, keeps `errnoRet`. v1.0.2 has no
 *   equivalent: SCMP_ACT_TRACE answers ENOSYS only while no tracer is attached, and ptrace is
 *   allowed in dynos, so a traced clone3 would be re-checked and let through. The v1.0.2
 *   schema does not forbid further properties (no additionalProperties: false), so the config
 *   still validates; runc 1.1.5 (specs-go 1.0.2-dev) applies errnoRet; a runtime that knew
 *   only v1.0.2 would ignore it and refuse clone3 with EPERM, the denying direction.
 * - no flags: runc 1.1.5 implements none (`runc features` lists no seccomp flags), and the
 *   kernel's defaults (SSB mitigation on, no logging) are what Docker runs with.
 */
export function ociSeccomp(arch: string = process.arch, kernel: string = release()): OciSeccomp {
  const p = dynoSeccompRules(arch, kernel);
  if (p.defaultAction === 'SCMP_ACT_ERRNO' && p.defaultErrno !== EPERM) {
    throw new SlipwayError('INTERNAL', `seccomp default errno ${p.defaultErrno} cannot be written in an OCI v1.0.2 config (runc's default is EPERM)`);
  }
  const architectures = p.architectures.filter((a) => OCI_102_ARCHES.has(a));
  return {
    defaultAction: p.defaultAction,
    // Without the host's own arch the list would not mean the host: leave it to runc then.
    ...(architectures[0] === p.architectures[0] ? { architectures } : {}),
    syscalls: p.rules.map((r) => ({
      names: [...r.names],
      action: r.action,
      ...(r.action === 'SCMP_ACT_ERRNO' && r.errno !== EPERM ? { errnoRet: r.errno! } : {}),
      ...(r.args.length ? { args: r.args.map((a) => ({ index: a.index, value: a.value, valueTwo: a.valueTwo, op: a.op })) } : {}),
    })),
  };
}

/** The policy text for the file `lxc.seccomp.profile` names (LXC policy version 2). */
export function lxcSeccomp(arch: string = process.arch, kernel: string = release()): string {
  return renderLxcPolicy(dynoSeccompRules(arch, kernel), SOURCE);
}

/** The resolved profile in Docker's own format, as a JSON string for
 * `HostConfig.SecurityOpt: ['seccomp=<json>']`. Already resolved, so it carries no
 * includes/excludes and Docker applies it as is; `architectures` replaces the archMap. */
export function dockerSeccomp(arch: string = process.arch, kernel: string = release()): string {
  const p = dynoSeccompRules(arch, kernel);
  const profile: DockerSeccompProfile = {
    defaultAction: p.defaultAction,
    ...(p.defaultErrno === undefined ? {} : { defaultErrnoRet: p.defaultErrno }),
    architectures: [...p.architectures],
    syscalls: p.rules.map((r) => ({
      names: [...r.names],
      action: r.action,
      ...(r.errno === undefined ? {} : { errnoRet: r.errno }),
      ...(r.args.length ? { args: r.args.map((a) => ({ index: a.index, value: a.value, valueTwo: a.valueTwo, op: a.op })) } : {}),
    })),
  };
  return JSON.stringify(profile);
}
