// The Docker create body, field by field: the same hardening and limits as runc's OCI config
// (hardening.ts), in HostConfig's words; with a network of its own, the dyno joins its pause
// container's (pause.ts).
import t from 'tap';
import { buildCreateOptions, containerName, JSON_LOG_MAX_SIZE, LABEL_DYNO, LABEL_MANAGED, pauseContainerName } from '../../../../../agent/runtime/docker/create-options.js';
import { stackImageRef } from '../../../../../agent/runtime/docker/stack-image.js';
import { exitFromState } from '../../../../../agent/runtime/docker/exit.js';
import { DYNO_CAPABILITIES, DYNO_OOM_SCORE_ADJ, MASKED_PATHS, READONLY_PATHS } from '../../../../../agent/runtime/hardening.js';
import { LOG_SIZE_MAX_BYTES } from '../../../../../agent/runtime/hardening.js';
import type { ContainerSpec } from '../../../../../agent/runtime/driver.js';

const spec: ContainerSpec = {
  dynoId: 'app1-web-1-abc', dir: '/var/lib/slipway/dynos/app1-web-1-abc', stackName: 'heroku-24', stackDir: '/s', slugDir: '/g',
  args: ['/bin/sh', '-c', 'true'], env: ['PORT=5000', 'DYNO=web.1', 'SECRET=s3cr3t'], cwd: '/app',
  user: { uid: 64000, gid: 64001 }, hostname: 'app1-web-1-abc',
  limits: { memoryBytes: 512 * 1048576, cpuShares: 1024, pidsLimit: 256, nofile: 10000 },
};
const input = { image: 'slipway-stack/heroku-24:0123456789abcdef', cgroupParent: '/slipway', appDir: '/var/lib/slipway/dynos/app1-web-1-abc/app' };
const body = buildCreateOptions(spec, input);
const host = body.HostConfig!;

t.test('the dyno runs unprivileged', async (t) => {
  t.equal(body.User, '64000:64001', 'uid:gid, never root');
  t.same(host.SecurityOpt, ['no-new-privileges']);
  t.same(host.CapDrop, ['ALL']);
  t.same(host.CapAdd, [...DYNO_CAPABILITIES]);
  t.equal(host.Privileged, false);
  t.equal(host.OomScoreAdj, DYNO_OOM_SCORE_ADJ);
});

t.test('a seccomp profile, when given, goes in SecurityOpt as Docker JSON', async (t) => {
  const profile = JSON.stringify({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [] });
  const withSeccomp = buildCreateOptions(spec, { ...input, seccompProfile: profile }).HostConfig!;
  t.same(withSeccomp.SecurityOpt, ['no-new-privileges', `seccomp=${profile}`]);
});

t.test('masked and read-only /proc paths are hardening.ts lists', async (t) => {
  t.same(host.MaskedPaths, [...MASKED_PATHS]);
  t.same(host.ReadonlyPaths, [...READONLY_PATHS]);
  t.ok(host.MaskedPaths!.includes('/proc/kcore'));
  t.ok(host.ReadonlyPaths!.includes('/proc/sys'));
});

t.test('limits come from the dyno size, swap capped at the quota', async (t) => {
  t.equal(host.Memory, 536870912);
  t.equal(host.MemorySwap, 536870912, 'memory+swap = memory: no swap');
  t.equal(host.CpuShares, 1024);
  t.equal(host.CpuQuota, undefined, 'no quota unless the size sets one');
  t.equal(host.CpuPeriod, undefined);
  t.equal(host.PidsLimit, 256);
  t.same(host.Ulimits, [{ Name: 'nofile', Soft: 10000, Hard: 10000 }]);
});

t.test('a CPU quota becomes CpuQuota over the kernel default period, like runc', async (t) => {
  const half = buildCreateOptions({ ...spec, limits: { ...spec.limits, cpuQuotaPercent: 50 } }, input).HostConfig!;
  t.equal(half.CpuPeriod, 100_000);
  t.equal(half.CpuQuota, 50_000);
  t.equal(half.CpuShares, 1024, 'shares stay');
  const tiny = buildCreateOptions({ ...spec, limits: { ...spec.limits, cpuQuotaPercent: 0.1 } }, input).HostConfig!;
  t.equal(tiny.CpuQuota, 1000, "never under the kernel's 1 ms minimum");
});

t.test('network, cgroup, labels and restarts', async (t) => {
  t.equal(host.NetworkMode, 'host', 'without spec.network: the host network, as runc and LXC');
  t.equal(host.CgroupParent, '/slipway');
  t.same(body.Labels, { [LABEL_DYNO]: 'app1-web-1-abc', [LABEL_MANAGED]: 'true' });
  t.same(host.RestartPolicy, { Name: 'no', MaximumRetryCount: 0 }, 'the agent decides about restarts');
  t.equal(host.AutoRemove, false, 'the exit status must outlive the process');
  t.equal(containerName('app1-web-1-abc'), 'slipway-app1-web-1-abc');
});

t.test('/app is a read-write bind of the overlay the driver mounted; the rootfs is the stack image', async (t) => {
  t.same(host.Mounts, [{ Type: 'bind', Source: input.appDir, Target: '/app', ReadOnly: false, BindOptions: { Propagation: 'rprivate' } }]);
  t.equal(host.Binds, undefined);
  t.equal(body.Image, input.image);
  t.equal(host.ReadonlyRootfs, false, 'the container layer is the dyno writable layer over the read-only image');
});

t.test('process, env, cwd and hostname pass through verbatim; no image entrypoint', async (t) => {
  t.same(body.Cmd, spec.args);
  t.same(body.Entrypoint, []);
  t.same(body.Env, spec.env);
  t.equal(body.WorkingDir, '/app');
  t.equal(body.Hostname, 'app1-web-1-abc');
  t.equal(body.Tty, false);
  t.equal(body.OpenStdin, false);
});

t.test("a dyno with its own network joins its pause container's, with the agent's resolv.conf", async (t) => {
  const network = { netns: 'slipway0-0123abcd', path: '/run/netns/slipway0-0123abcd', resolvConf: '/var/lib/slipway/network/resolv.conf' };
  const joined = buildCreateOptions({ ...spec, network }, input);
  t.equal(joined.HostConfig!.NetworkMode, 'container:slipway-pause.slipway0-0123abcd', 'the pause container named after the namespace');
  t.equal(pauseContainerName(network.netns), 'slipway-pause.slipway0-0123abcd');
  t.notOk('Hostname' in joined, 'no hostname of its own: Docker refuses one with a container network and takes the pause container\'s');
  t.same(joined.HostConfig!.Mounts, [
    ...host.Mounts!,
    { Type: 'bind', Source: network.resolvConf, Target: '/etc/resolv.conf', ReadOnly: true, BindOptions: { Propagation: 'rprivate' } },
  ], '/app as before, and resolv.conf read-only');
  const withHosts = buildCreateOptions({ ...spec, network }, { ...input, hostsFile: '/s/etc/hosts' }).HostConfig!.Mounts!;
  t.same(withHosts.at(-1), { Type: 'bind', Source: '/s/etc/hosts', Target: '/etc/hosts', ReadOnly: true, BindOptions: { Propagation: 'rprivate' } }, "and the stack's /etc/hosts, when it has one");
  t.same(buildCreateOptions(spec, { ...input, hostsFile: '/s/etc/hosts' }).HostConfig!.Mounts, host.Mounts, "without a network of its own the engine's hosts file stays");
  t.same({ ...joined, Hostname: body.Hostname, HostConfig: { ...joined.HostConfig, NetworkMode: 'host', Mounts: host.Mounts } }, body, 'nothing else differs');
  t.not(pauseContainerName('x-00000000'), containerName('pause-x-00000000'), 'no dyno id (a-z0-9-) gives a pause container\'s name');
});

t.test('the log is json-file, capped like conmon', async (t) => {
  t.same(host.LogConfig, { Type: 'json-file', Config: { 'max-size': '16m', 'max-file': '1' } });
  t.equal(JSON_LOG_MAX_SIZE, `${LOG_SIZE_MAX_BYTES / 1048576}m`);
});

t.test('the body is pure: the same spec gives the same body', async (t) => {
  t.same(buildCreateOptions(spec, input), body);
});

t.test('stack image references fold the name into Docker syntax', async (t) => {
  t.equal(stackImageRef('heroku-24', '0123456789abcdef'), 'slipway-stack/heroku-24:0123456789abcdef');
  t.equal(stackImageRef('My_Stack..2', 'ab'), 'slipway-stack/my-stack-2:ab');
  t.equal(stackImageRef('__', 'ab'), 'slipway-stack/stack:ab');
});

t.test('exits read from the engine: signals only from 128+N without an engine error', async (t) => {
  const state = (o: { ExitCode: number; OOMKilled?: boolean; Error?: string }) =>
    ({ Status: 'exited', Running: false, Paused: false, Restarting: false, Dead: false, Pid: 0, StartedAt: '', FinishedAt: '', OOMKilled: false, Error: '', ...o });
  t.same(exitFromState(state({ ExitCode: 3 })), { code: 3, signal: null, oomKilled: false });
  t.same(exitFromState(state({ ExitCode: 137 })), { code: 137, signal: 'SIGKILL', oomKilled: false }, '137 alone is not an OOM kill');
  t.same(exitFromState(state({ ExitCode: 137, OOMKilled: true })), { code: 137, signal: 'SIGKILL', oomKilled: true });
  t.same(exitFromState(state({ ExitCode: 143 })), { code: 143, signal: 'SIGTERM', oomKilled: false });
  t.same(exitFromState(state({ ExitCode: 255, Error: 'OCI runtime create failed' })), { code: 255, signal: null, oomKilled: false });
});
