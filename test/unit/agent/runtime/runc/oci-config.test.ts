import t from 'tap';
import { buildOciConfig } from '../../../../../agent/runtime/runc/oci-config.js';
import { DYNO_CAPABILITIES } from '../../../../../agent/runtime/hardening.js';
import type { ContainerSpec } from '../../../../../agent/runtime/driver.js';

const spec: ContainerSpec = {
  dynoId: 'app1-web-1-abc', dir: '/x', stackName: 'busybox', stackDir: '/s', slugDir: '/g', args: ['/bin/sh', '-c', 'true'],
  env: ['PORT=1', 'DYNO=web.1'], cwd: '/app', user: { uid: 64000, gid: 64000 }, hostname: 'app1-web-1-abc',
  limits: { memoryBytes: 512 * 1048576, cpuShares: 1024, pidsLimit: 256, nofile: 10000 },
};
const cfg = buildOciConfig(spec, { cgroupsPath: '/slipway/slipway-app1-web-1-abc' }) as any;

t.test('the dyno runs unprivileged', async (t) => {
  t.same(cfg.process.user, { uid: 64000, gid: 64000, additionalGids: [64000] });
  t.equal(cfg.process.noNewPrivileges, true);
  t.same(cfg.process.capabilities.bounding, DYNO_CAPABILITIES);
  t.same(cfg.process.capabilities.ambient, [], 'no ambient capabilities for the non-root user');
  t.equal(cfg.process.terminal, false);
});

t.test('limits come from the dyno size, swap capped at the quota', async (t) => {
  t.same(cfg.linux.resources.memory, { limit: 536870912, swap: 536870912 });
  t.same(cfg.linux.resources.cpu, { shares: 1024 });
  t.same(cfg.linux.resources.pids, { limit: 256 });
  t.same(cfg.process.rlimits, [{ type: 'RLIMIT_NOFILE', hard: 10000, soft: 10000 }]);
  t.equal(cfg.linux.cgroupsPath, '/slipway/slipway-app1-web-1-abc');
});

t.test('sensitive /proc and /sys paths are masked or read-only', async (t) => {
  t.ok(cfg.linux.maskedPaths.includes('/proc/kcore'));
  t.ok(cfg.linux.readonlyPaths.includes('/proc/sysrq-trigger'));
  const sys = cfg.mounts.find((m: any) => m.destination === '/sys');
  t.ok(sys.options.includes('ro'));
  t.same(cfg.linux.resources.devices, [{ allow: false, access: 'rwm' }], 'no device access beyond runc defaults');
});

t.test('process, env and cwd are passed through verbatim', async (t) => {
  t.same(cfg.process.args, spec.args);
  t.same(cfg.process.env, spec.env);
  t.equal(cfg.process.cwd, '/app');
  t.equal(cfg.root.path, 'rootfs');
});

t.test('a CPU quota appears only when the size asks for one; the seccomp section is passed through', async (t) => {
  t.same((cfg.linux.resources.cpu), { shares: 1024 }, 'shares only by default');
  const q = buildOciConfig({ ...spec, limits: { ...spec.limits, cpuQuotaPercent: 150 } }, { cgroupsPath: '/x', seccomp: { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [] } }) as any;
  t.same(q.linux.resources.cpu, { shares: 1024, period: 100_000, quota: 150_000 });
  t.same(q.linux.seccomp, { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [] });
});

t.test("with the dyno's network: runc joins its namespace by path and binds the agent's resolv.conf read-only", async (t) => {
  const c = buildOciConfig({ ...spec, network: { netns: 'slipway0-0123abcd', path: '/run/netns/slipway0-0123abcd', resolvConf: '/var/lib/slipway/network/resolv.conf' } }, { cgroupsPath: '/p' }) as any;
  t.same(c.linux.namespaces.find((n: { type: string }) => n.type === 'network'), { type: 'network', path: '/run/netns/slipway0-0123abcd' });
  t.same(c.mounts.find((m: { destination: string }) => m.destination === '/etc/resolv.conf'), { destination: '/etc/resolv.conf', type: 'bind', source: '/var/lib/slipway/network/resolv.conf', options: ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'] });
  t.equal(cfg.linux.namespaces.some((n: { type: string }) => n.type === 'network'), false, 'without one: the host network (tests and the baseline only)');
});
