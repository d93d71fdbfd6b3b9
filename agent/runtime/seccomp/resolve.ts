// Resolves a profile in Docker's format for one capability set, host architecture and
// kernel, the way moby's setupSeccomp does (profiles/seccomp/seccomp_linux.go), into the
// normalized profile the three renderings (OCI, LXC, Docker) are made from. Pure.
//
// Resolution, rule by rule, in the profile's order:
// - excludes.arches names the host's arch, or excludes.caps names a cap of the set, or the
//   kernel is at least excludes.minKernel: the rule is dropped;
// - includes.arches lacks the host's arch, or includes.caps names a cap the set lacks, or the
//   kernel is older than includes.minKernel: the rule is dropped.
// minKernel rules are kept or dropped against the running kernel (Docker does the same): a
// dyno runs on the kernel of the host that resolves its filter. Docker's profile has one: it
// allows ptrace and process_vm_* from 4.8 on, the kernel that made seccomp re-check a traced
// syscall.
//
// Invariants of the result, which the renderers rely on:
// - only the actions all three runtimes express the same way: ALLOW, ERRNO, KILL, TRAP;
// - every ERRNO (rule or default) carries its errno (EPERM when the profile says none, as
//   runc and libseccomp do);
// - a rule whose action and errno equal the default's is dropped: it changes nothing, and
//   libseccomp (LXC) refuses such a rule;
// - syscall names are lowercase identifiers, so no name can smuggle text into LXC's format.
import { SlipwayError } from '../../../shared/errors.js';
import type { DockerSeccompFilter, DockerSeccompProfile } from './docker-format.js';

export const SECCOMP_ACTIONS = ['SCMP_ACT_ALLOW', 'SCMP_ACT_ERRNO', 'SCMP_ACT_KILL', 'SCMP_ACT_TRAP'] as const;
export type SeccompAction = (typeof SECCOMP_ACTIONS)[number];

export const SECCOMP_OPS = [
  'SCMP_CMP_NE', 'SCMP_CMP_LT', 'SCMP_CMP_LE', 'SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT', 'SCMP_CMP_MASKED_EQ',
] as const;
export type SeccompOp = (typeof SECCOMP_OPS)[number];

/** One condition on a syscall argument, with libseccomp's meaning: for MASKED_EQ,
 * (arg[index] & value) == valueTwo; otherwise arg[index] OP value. */
export type SeccompArg = { index: number; value: number; valueTwo: number; op: SeccompOp };

/** One rule: the action applies to each named syscall when all args conditions hold. */
export type SeccompRule = { names: string[]; action: SeccompAction; errno?: number; args: SeccompArg[] };

export type DynoSeccomp = {
  defaultAction: SeccompAction;
  /** Present exactly when defaultAction is SCMP_ACT_ERRNO. */
  defaultErrno?: number;
  /** The host's SCMP_ARCH_* first, then the compat arches its kernel also runs (archMap). */
  architectures: string[];
  rules: SeccompRule[];
};

/** EPERM: the errno of SCMP_ACT_ERRNO when none is given (runc, libseccomp, Docker). */
export const EPERM = 1;

/** Node's process.arch -> moby's native arch name (its goToNative table, which includes and
 * excludes name) and libseccomp's arch. Node runs ppc64 Linux only little-endian. */
const ARCHES: Readonly<Record<string, { native: string; scmp: string }>> = {
  x64: { native: 'amd64', scmp: 'SCMP_ARCH_X86_64' },
  arm64: { native: 'arm64', scmp: 'SCMP_ARCH_AARCH64' },
  arm: { native: 'arm', scmp: 'SCMP_ARCH_ARM' },
  ia32: { native: 'x86', scmp: 'SCMP_ARCH_X86' },
  ppc64: { native: 'ppc64le', scmp: 'SCMP_ARCH_PPC64LE' },
  s390x: { native: 's390x', scmp: 'SCMP_ARCH_S390X' },
  riscv64: { native: 'riscv64', scmp: 'SCMP_ARCH_RISCV64' },
};

export function hostArch(arch: string): { native: string; scmp: string } {
  const a = ARCHES[arch];
  if (!a) throw new SlipwayError('CONFIG_INVALID', `no seccomp architecture is known for ${JSON.stringify(arch)} (known: ${Object.keys(ARCHES).join(', ')})`);
  return a;
}

/** "6.18.44-fc-v657" -> [6, 18, 44]; moby's kernel.ParseRelease reads the same three numbers. */
export function parseKernel(release: string): [number, number, number] {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(release);
  if (!m) throw new SlipwayError('INTERNAL', `cannot read a kernel version from ${JSON.stringify(release)}`);
  return [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
}

function kernelAtLeast(kernel: [number, number, number], min: string): boolean {
  const want = parseKernel(min);
  for (let i = 0; i < 3; i++) if (kernel[i] !== want[i]) return kernel[i]! > want[i]!;
  return true;
}

export interface ResolveTarget {
  /** The bounding capability set of the dyno, CAP_* names. */
  capabilities: readonly string[];
  /** Node's process.arch of the host. */
  arch: string;
  /** The host's kernel release (os.release()). */
  kernel: string;
}

function action(a: string, where: string): SeccompAction {
  if ((SECCOMP_ACTIONS as readonly string[]).includes(a)) return a as SeccompAction;
  throw new SlipwayError('INTERNAL', `seccomp ${where}: action ${a} is not one all three runtimes express (${SECCOMP_ACTIONS.join(', ')})`);
}

function op(o: string, where: string): SeccompOp {
  if ((SECCOMP_OPS as readonly string[]).includes(o)) return o as SeccompOp;
  throw new SlipwayError('INTERNAL', `seccomp ${where}: unknown operator ${o}`);
}

const SYSCALL_NAME = /^[a-z0-9_]+$/;

export function resolveProfile(profile: DockerSeccompProfile, target: ResolveTarget): DynoSeccomp {
  const { native, scmp } = hostArch(target.arch);
  const kernel = parseKernel(target.kernel);
  const caps = new Set(target.capabilities);
  const excluded = (f: DockerSeccompFilter | undefined) => !!f && (
    (f.arches ?? []).includes(native) || (f.caps ?? []).some((c) => caps.has(c)) || (f.minKernel !== undefined && kernelAtLeast(kernel, f.minKernel)));
  const included = (f: DockerSeccompFilter | undefined) => !f || (
    (!f.arches?.length || f.arches.includes(native)) && (f.caps ?? []).every((c) => caps.has(c)) && (f.minKernel === undefined || kernelAtLeast(kernel, f.minKernel)));

  const defaultAction = action(profile.defaultAction, 'defaultAction');
  const defaultErrno = defaultAction === 'SCMP_ACT_ERRNO' ? profile.defaultErrnoRet ?? EPERM : undefined;
  const rules: SeccompRule[] = [];
  profile.syscalls.forEach((s, i) => {
    const where = `syscalls[${i}]`;
    if (excluded(s.excludes) || !included(s.includes)) return;
    const act = action(s.action, where);
    const errno = act === 'SCMP_ACT_ERRNO' ? s.errnoRet ?? EPERM : undefined;
    if (act === defaultAction && errno === defaultErrno) return;
    for (const n of s.names) if (!SYSCALL_NAME.test(n)) throw new SlipwayError('INTERNAL', `seccomp ${where}: bad syscall name ${JSON.stringify(n)}`);
    rules.push({
      names: [...s.names],
      action: act,
      ...(errno === undefined ? {} : { errno }),
      args: (s.args ?? []).map((a, j) => ({ index: a.index, value: a.value, valueTwo: a.valueTwo ?? 0, op: op(a.op, `${where}.args[${j}]`) })),
    });
  });

  const mapped = profile.archMap?.find((m) => m.architecture === scmp);
  const architectures = profile.architectures?.length ? [...profile.architectures] : [scmp, ...(mapped?.subArchitectures ?? [])];
  return { defaultAction, ...(defaultErrno === undefined ? {} : { defaultErrno }), architectures, rules };
}
