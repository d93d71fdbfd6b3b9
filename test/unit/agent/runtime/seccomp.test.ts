// The dyno seccomp filter (agent/runtime/seccomp): Docker's default profile resolved for the
// dyno capability set, and its three renderings. The checks evaluate rules the way the kernel
// filter does (an allow rule whose conditions all hold lets the call through; otherwise a
// matching ERRNO rule answers; otherwise the default), so they fail when a rule is missing
// or too broad, not only when the text changes.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { SlipwayError } from '../../../../shared/errors.js';
import { DYNO_CAPABILITIES } from '../../../../agent/runtime/hardening.js';
import { vendorPath } from '../../../../agent/lib/vendor.js';
import { dockerSeccomp, dynoSeccompRules, lxcSeccomp, ociSeccomp, type DynoSeccomp, type SeccompAction, type SeccompArg } from '../../../../agent/runtime/seccomp/profile.js';
import { loadDockerDefaultProfile, parseDockerProfile } from '../../../../agent/runtime/seccomp/docker-format.js';
import { resolveProfile } from '../../../../agent/runtime/seccomp/resolve.js';
import { renderLxcPolicy } from '../../../../agent/runtime/seccomp/lxc-format.js';
import { buildOciConfig } from '../../../../agent/runtime/runc/oci-config.js';
import { validateOciConfig } from '../../../../agent/runtime/runc/oci-schema.js';
import type { ContainerSpec } from '../../../../agent/runtime/driver.js';

const KERNEL = '6.1.0';
const ENOSYS = 38;
// clone(2) flags (linux/sched.h).
const CLONE_THREAD_FLAGS = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000 | 0x80000 | 0x100000 | 0x200000; // VM FS FILES SIGHAND THREAD SYSVSEM SETTLS PARENT_SETTID CHILD_CLEARTID
const SIGCHLD = 17;
const CLONE_NEWNS = 0x20000;
const CLONE_NEWUSER = 0x10000000;
const CLONE_NEWPID = 0x20000000;
const CLONE_NEWNET = 0x40000000;

function holds(a: SeccompArg, args: number[]): boolean {
  const x = args[a.index] ?? 0;
  switch (a.op) {
    case 'SCMP_CMP_NE': return x !== a.value;
    case 'SCMP_CMP_LT': return x < a.value;
    case 'SCMP_CMP_LE': return x <= a.value;
    case 'SCMP_CMP_EQ': return x === a.value;
    case 'SCMP_CMP_GE': return x >= a.value;
    case 'SCMP_CMP_GT': return x > a.value;
    // Flags fit in 31 bits here, so JS's 32-bit & is exact.
    case 'SCMP_CMP_MASKED_EQ': return (x & a.value) === a.valueTwo;
  }
}

/** 'allow', or the errno the call fails with. */
function verdict(p: DynoSeccomp, name: string, args: number[] = []): 'allow' | number {
  const matching = p.rules.filter((r) => r.names.includes(name) && r.args.every((a) => holds(a, args)));
  if (matching.some((r) => r.action === 'SCMP_ACT_ALLOW')) return 'allow';
  const errno = matching.find((r) => r.action === 'SCMP_ACT_ERRNO');
  if (errno) return errno.errno!;
  return p.defaultAction === 'SCMP_ACT_ALLOW' ? 'allow' : p.defaultErrno ?? -1;
}

const dyno = dynoSeccompRules('x64', KERNEL);

t.test('the vendored file is the Docker profile it claims to be', async (t) => {
  const raw = JSON.parse(readFileSync(vendorPath('docker-seccomp', 'default.json'), 'utf8')) as Record<string, unknown>;
  t.equal(raw.defaultAction, 'SCMP_ACT_ERRNO');
  t.ok(Array.isArray(raw.archMap) && Array.isArray(raw.syscalls));
  const p = loadDockerDefaultProfile();
  t.ok(p.syscalls.some((s) => s.includes?.caps?.includes('CAP_SYS_ADMIN') && s.names.includes('mount')), 'mount is gated on CAP_SYS_ADMIN');
  t.ok(p.syscalls.some((s) => s.names.includes('clone3') && s.errnoRet === ENOSYS), 'clone3 answers ENOSYS without CAP_SYS_ADMIN');
  t.ok(readFileSync(vendorPath('docker-seccomp', 'LICENSE'), 'utf8').includes('Apache License'));
  t.match(readFileSync(vendorPath('docker-seccomp', 'README.md'), 'utf8'), /moby\/moby[\s\S]*[0-9a-f]{40}/, 'README names the source and commit');
});

t.test('the dyno set refuses what needs CAP_SYS_ADMIN', async (t) => {
  t.equal(dyno.defaultAction, 'SCMP_ACT_ERRNO');
  t.equal(dyno.defaultErrno, 1, 'everything not listed fails with EPERM');
  for (const name of ['mount', 'umount2', 'unshare', 'setns', 'pivot_root', 'bpf', 'perf_event_open', 'keyctl', 'open_by_handle_at', 'chroot', 'reboot']) {
    t.equal(verdict(dyno, name), 1, `${name} -> EPERM`);
  }
  for (const [what, flags] of [['user', CLONE_NEWUSER], ['mount', CLONE_NEWNS], ['pid', CLONE_NEWPID], ['net', CLONE_NEWNET]] as const) {
    t.equal(verdict(dyno, 'clone', [flags | SIGCHLD]), 1, `clone with a new ${what} namespace -> EPERM`);
  }
  t.equal(verdict(dyno, 'clone3'), ENOSYS, 'clone3 -> ENOSYS, so glibc falls back to clone');
  t.equal(verdict(dyno, 'socket', [40]), 1, 'no AF_VSOCK sockets');
});

t.test('the dyno set allows what ordinary processes and threads need', async (t) => {
  for (const name of ['read', 'write', 'openat', 'execve', 'exit_group', 'futex', 'mmap', 'epoll_wait', 'accept4', 'kill', 'prctl', 'rseq']) {
    t.equal(verdict(dyno, name), 'allow', name);
  }
  t.equal(verdict(dyno, 'clone', [CLONE_THREAD_FLAGS]), 'allow', 'clone for a thread (pthread_create flags)');
  t.equal(verdict(dyno, 'clone', [SIGCHLD]), 'allow', 'clone for a process (fork)');
  t.equal(verdict(dyno, 'socket', [2]), 'allow', 'AF_INET sockets');
  t.equal(verdict(dyno, 'personality', [0]), 'allow');
  t.equal(verdict(dyno, 'personality', [0x0040000]), 1, 'other personalities (ADDR_NO_RANDOMIZE) are refused');
});

t.test('resolution follows caps, arch and kernel, as Docker does', async (t) => {
  const base = loadDockerDefaultProfile();
  const admin = resolveProfile(base, { capabilities: [...DYNO_CAPABILITIES, 'CAP_SYS_ADMIN'], arch: 'x64', kernel: KERNEL });
  t.equal(verdict(admin, 'mount'), 'allow', 'with CAP_SYS_ADMIN mount is allowed: the caps decide');
  t.equal(verdict(admin, 'clone3'), 'allow', 'and clone3 is no longer ENOSYS');
  t.same(dyno.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'], 'the archMap of amd64');
  t.equal(verdict(dyno, 'arch_prctl'), 'allow');
  t.equal(verdict(dyno, 'set_tls'), 1, 'arm-only syscalls are not in the amd64 filter');
  const arm = dynoSeccompRules('arm64', KERNEL);
  t.same(arm.architectures, ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
  t.equal(verdict(arm, 'set_tls'), 'allow');
  t.equal(verdict(arm, 'arch_prctl'), 1);
  const s390 = dynoSeccompRules('s390x', KERNEL);
  t.equal(verdict(s390, 'clone', [0, CLONE_NEWUSER]), 1, 's390x checks clone flags in the second argument');
  t.equal(verdict(s390, 'clone', [0, SIGCHLD]), 'allow');
  t.equal(verdict(dyno, 'ptrace'), 'allow', 'ptrace from kernel 4.8 on (seccomp re-checks traced calls)');
  t.equal(verdict(dynoSeccompRules('x64', '4.4.0-generic'), 'ptrace'), 1, 'minKernel rules are dropped on older kernels');
  t.throws(() => dynoSeccompRules('loong64', KERNEL), { code: 'CONFIG_INVALID' });
});

t.test('a profile slipway cannot render faithfully is refused, not weakened', async (t) => {
  t.throws(() => parseDockerProfile({ defaultAction: 'SCMP_ACT_ERRNO' }, 'x'), SlipwayError);
  t.throws(() => parseDockerProfile({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 2 ** 60, op: 'SCMP_CMP_EQ' }] }] }, 'x'), { code: 'INTERNAL' });
  const log = parseDockerProfile({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read'], action: 'SCMP_ACT_LOG' }] }, 'x');
  t.throws(() => resolveProfile(log, { capabilities: [], arch: 'x64', kernel: KERNEL }), { code: 'INTERNAL' });
  const evil = parseDockerProfile({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read allow\nmount'], action: 'SCMP_ACT_ALLOW' }] }, 'x');
  t.throws(() => resolveProfile(evil, { capabilities: [], arch: 'x64', kernel: KERNEL }), { code: 'INTERNAL' }, 'a name cannot inject LXC lines');
});

const OCI_102_ACTIONS = ['SCMP_ACT_KILL', 'SCMP_ACT_TRAP', 'SCMP_ACT_ERRNO', 'SCMP_ACT_TRACE', 'SCMP_ACT_ALLOW', 'SCMP_ACT_LOG'];
const OCI_102_ARCHES = ['SCMP_ARCH_X86', 'SCMP_ARCH_X86_64', 'SCMP_ARCH_X32', 'SCMP_ARCH_ARM', 'SCMP_ARCH_AARCH64', 'SCMP_ARCH_S390', 'SCMP_ARCH_S390X'];

t.test('the OCI object has runtime-spec v1.0.2 shape and the same rules', async (t) => {
  const oci = ociSeccomp('x64', KERNEL);
  t.same(Object.keys(oci).sort(), ['architectures', 'defaultAction', 'syscalls'], 'no defaultErrnoRet (v1.1.0) and no flags');
  t.equal(oci.defaultAction, 'SCMP_ACT_ERRNO', "runc's SCMP_ACT_ERRNO default errno is EPERM, as the profile wants");
  t.ok(oci.architectures!.every((a) => OCI_102_ARCHES.includes(a)));
  for (const s of oci.syscalls) {
    t.ok(s.names.length > 0 && OCI_102_ACTIONS.includes(s.action), `${s.names[0]}: names and a v1.0.2 action`);
    t.ok(Object.keys(s).every((k) => ['names', 'action', 'args', 'errnoRet'].includes(k)));
    for (const a of s.args ?? []) t.same(Object.keys(a).sort(), ['index', 'op', 'value', 'valueTwo']);
  }
  t.same(oci.syscalls.filter((s) => s.errnoRet !== undefined), [{ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS }],
    'errnoRet only where EPERM would be wrong: clone3');
  const back: DynoSeccomp = {
    defaultAction: 'SCMP_ACT_ERRNO', defaultErrno: 1, architectures: oci.architectures!,
    rules: oci.syscalls.map((s) => ({ names: s.names, action: s.action as SeccompAction, ...(s.action === 'SCMP_ACT_ERRNO' ? { errno: s.errnoRet ?? 1 } : {}), args: (s.args ?? []) as SeccompArg[] })),
  };
  t.same(back, dyno, 'read back with runc defaults it is the resolved profile');
  t.notOk('architectures' in ociSeccomp('riscv64', KERNEL), 'an arch v1.0.2 lacks is left to runc (native only)');
});

t.test('a dyno config.json with the OCI object validates against the vendored v1.0.2 schema', async (t) => {
  const spec: ContainerSpec = {
    dynoId: 'web-1', dir: '/d', stackName: 'busybox', stackDir: '/s', slugDir: '/slug', args: ['/bin/sh', '-c', 'true'], env: ['PATH=/bin'],
    cwd: '/app', user: { uid: 64000, gid: 64000 }, hostname: 'web-1',
    limits: { memoryBytes: 512 * 1024 * 1024, cpuShares: 1024, pidsLimit: 256, nofile: 10000 },
  };
  for (const arch of ['x64', 'arm64', 's390x', 'riscv64']) {
    t.doesNotThrow(() => validateOciConfig(buildOciConfig(spec, { cgroupsPath: '/slipway/d', seccomp: ociSeccomp(arch, KERNEL) })), arch);
  }
  // The schema does check seccomp: an action v1.0.2 lacks is refused, so the pass above means something.
  const oci = ociSeccomp('x64', KERNEL);
  const notify = { ...oci, syscalls: [...oci.syscalls, { names: ['ioctl'], action: 'SCMP_ACT_NOTIFY' }] };
  t.throws(() => validateOciConfig(buildOciConfig(spec, { cgroupsPath: '/slipway/d', seccomp: notify })), { code: 'OCI_CONFIG_INVALID' });
});

/** Parses an LXC v2 policy line by line, by LXC's grammar, into the rules it installs. */
function parseLxc(text: string): { defaultLine: string; rules: { name: string; action: string; args: string[] }[] } {
  const lines = text.split('\n');
  if (lines.pop() !== '') throw new Error('an LXC policy ends with a newline');
  const rules = [];
  for (const line of lines.slice(2)) {
    if (line.startsWith('#')) continue;
    const m = /^([a-z0-9_]+) (allow|kill|trap|errno \d+)((?: \[\d,\d+,SCMP_CMP_[A-Z_]+(?:,\d+)?\])*)$/.exec(line);
    if (!m) throw new Error(`not an LXC v2 rule line: ${JSON.stringify(line)}`);
    rules.push({ name: m[1]!, action: m[2]!, args: m[3]!.trim() ? m[3]!.trim().split(' ') : [] });
  }
  return { defaultLine: `${lines[0]}\n${lines[1]}`, rules };
}

t.test('the LXC policy holds the same rules, in LXC v2 grammar', async (t) => {
  const lxc = parseLxc(lxcSeccomp('x64', KERNEL));
  t.equal(lxc.defaultLine, '2\nallowlist errno 1');
  const allowed = (rules: { name: string; action: string }[]) => new Set(rules.filter((r) => r.action === 'allow').map((r) => r.name));
  const fromRules = new Set(dyno.rules.filter((r) => r.action === 'SCMP_ACT_ALLOW').flatMap((r) => r.names));
  t.same([...allowed(lxc.rules)].sort(), [...fromRules].sort(), 'the same allowed names');
  t.notOk(allowed(lxc.rules).has('mount') || allowed(lxc.rules).has('unshare') || allowed(lxc.rules).has('setns'));
  t.same(lxc.rules.filter((r) => r.name === 'clone'), [{ name: 'clone', action: 'allow', args: ['[0,0,SCMP_CMP_MASKED_EQ,2114060288]'] }],
    'clone only without namespace flags: (flags & 0x7E020000) == 0 in LXC order (value, then mask)');
  t.same(lxc.rules.filter((r) => r.name === 'clone3'), [{ name: 'clone3', action: 'errno 38', args: [] }]);
  t.same(lxc.rules.filter((r) => r.name === 'socket'), [{ name: 'socket', action: 'allow', args: ['[0,40,SCMP_CMP_NE]'] }]);
  const lines = dyno.rules.reduce((n, r) => n + r.names.length, 0);
  t.equal(lxc.rules.length, lines, 'one line per syscall per rule');
});

t.test('conditions LXC cannot express resolve towards denial', async (t) => {
  const wide = { index: 6, value: 1, valueTwo: 0, op: 'SCMP_CMP_EQ' as const };
  const text = renderLxcPolicy({
    defaultAction: 'SCMP_ACT_ERRNO', defaultErrno: 1, architectures: ['SCMP_ARCH_X86_64'],
    rules: [
      { names: ['read'], action: 'SCMP_ACT_ALLOW', args: [] },
      { names: ['ioctl'], action: 'SCMP_ACT_ALLOW', args: [wide] },
      { names: ['kcmp'], action: 'SCMP_ACT_ERRNO', errno: 13, args: [wide] },
    ],
  }, 'test');
  const { rules } = parseLxc(text);
  t.same(rules, [{ name: 'read', action: 'allow', args: [] }, { name: 'kcmp', action: 'errno 13', args: [] }],
    'the allow rule is left out (default refuses), the refusing rule applies unconditionally');
  t.match(text, /^# ioctl: conditions LXC cannot express; not allowed$/m);
});

t.test('the Docker JSON round-trips through Docker\'s format to the same rules', async (t) => {
  const json = dockerSeccomp('x64', KERNEL);
  const parsed = JSON.parse(json) as Record<string, unknown>;
  t.equal(parsed.defaultErrnoRet, 1);
  t.same(parsed.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
  t.notOk('archMap' in parsed, 'architectures, not archMap: Docker refuses both');
  t.notOk(json.includes('includes') || json.includes('excludes'), 'already resolved: nothing left for Docker to filter');
  const again = resolveProfile(parseDockerProfile(parsed, 'docker json'), { capabilities: DYNO_CAPABILITIES, arch: 'x64', kernel: KERNEL });
  t.same(again, dyno);
});
