import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildLxcConfig, sharesToWeight, type LxcConfigInput } from '../../../../../agent/runtime/lxc/lxc-config.js';
import { entryScript, runtimeShim, shellQuote, stopHookScript } from '../../../../../agent/runtime/lxc/scripts.js';

const input = (over: Partial<LxcConfigInput> = {}): LxcConfigInput => ({
  hostname: 'web-1', rootfs: '/var/lib/slipway/dynos/d1/rootfs', user: { uid: 64000, gid: 64000 }, cwd: '/app',
  limits: { memoryBytes: 512 * 1024 * 1024, cpuShares: 1024, pidsLimit: 256, nofile: 10000 },
  cgroupPath: '/slipway/slipway-d1', cgroupVersion: 1, seccompFile: '/d/seccomp', stopHook: '/d/stop-hook', logFile: '/d/lxc.log', ...over,
});
const keys = (text: string) => text.trim().split('\n').map((l) => l.split(' = ') as [string, string]);
const value = (text: string, key: string) => keys(text).filter(([k]) => k === key).map(([, v]) => v);

t.test('the dyno runs as the dyno user without privileges, on the host network', async (t) => {
  const c = buildLxcConfig(input());
  t.same(value(c, 'lxc.init.uid'), ['64000']);
  t.same(value(c, 'lxc.init.gid'), ['64000']);
  t.same(value(c, 'lxc.no_new_privs'), ['1']);
  t.same(value(c, 'lxc.cap.keep'), ['audit_write kill net_bind_service'], 'the capability set of hardening.ts');
  t.same(value(c, 'lxc.net.0.type'), ['none'], 'none = share the host network namespace, as runc dynos do');
  t.same(value(c, 'lxc.seccomp.profile'), ['/d/seccomp']);
  t.same(value(c, 'lxc.rootfs.path'), ['dir:/var/lib/slipway/dynos/d1/rootfs']);
  t.same(value(c, 'lxc.mount.auto'), ['proc:mixed sys:ro']);
  t.same(value(c, 'lxc.prlimit.nofile'), ['10000']);
});

t.test('masked paths: files under /dev/null, dirs under an empty read-only tmpfs; read-only paths bound ro', async (t) => {
  const entries = value(buildLxcConfig(input()), 'lxc.mount.entry');
  t.ok(entries.includes('/dev/null proc/kcore none bind,optional 0 0'));
  t.ok(entries.includes('/dev/null proc/keys none bind,optional 0 0'));
  t.ok(entries.includes('tmpfs proc/acpi tmpfs ro,nosuid,nodev,noexec,size=0,optional 0 0'));
  t.ok(entries.includes('tmpfs sys/firmware tmpfs ro,nosuid,nodev,noexec,size=0,optional 0 0'));
  t.ok(entries.includes('/proc/bus proc/bus none rbind,ro,optional 0 0'));
});

t.test('limits on cgroup v1 and v2; the quota only when asked', async (t) => {
  const v1 = buildLxcConfig(input());
  t.same(value(v1, 'lxc.cgroup.memory.limit_in_bytes'), [String(512 * 1024 * 1024)]);
  t.same(value(v1, 'lxc.cgroup.memory.memsw.limit_in_bytes'), [String(512 * 1024 * 1024)], 'no swap');
  t.same(value(v1, 'lxc.cgroup.cpu.shares'), ['1024']);
  t.same(value(v1, 'lxc.cgroup.pids.max'), ['256']);
  t.same(value(v1, 'lxc.cgroup.cpu.cfs_quota_us'), []);
  t.same(value(v1, 'lxc.cgroup.dir.container'), ['slipway/slipway-d1'], 'relative, as LXC requires');
  const q = buildLxcConfig(input({ limits: { ...input().limits, cpuQuotaPercent: 50 } }));
  t.same(value(q, 'lxc.cgroup.cpu.cfs_quota_us'), ['50000']);
  t.same(value(q, 'lxc.cgroup.cpu.cfs_period_us'), ['100000']);
  const v2 = buildLxcConfig(input({ cgroupVersion: 2, limits: { ...input().limits, cpuQuotaPercent: 200 } }));
  t.same(value(v2, 'lxc.cgroup2.memory.max'), [String(512 * 1024 * 1024)]);
  t.same(value(v2, 'lxc.cgroup2.memory.swap.max'), ['0']);
  t.same(value(v2, 'lxc.cgroup2.cpu.max'), ['200000 100000']);
  t.same(value(v2, 'lxc.cgroup2.cpu.weight'), [String(sharesToWeight(1024))]);
  t.same(value(v2, 'lxc.cgroup.memory.limit_in_bytes'), [], 'no v1 keys on v2');
  t.equal(sharesToWeight(2), 1);
  t.equal(sharesToWeight(262144), 10000);
  t.equal(sharesToWeight(1024), 39, 'the conversion runc uses');
});

t.test('a newline in a value cannot inject configuration', async (t) => {
  t.throws(() => buildLxcConfig(input({ rootfs: '/x\nlxc.init.uid = 0' })), /newline/);
});

t.test('the entry script sets every env value byte for byte and execs the args', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-entry-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const tricky = "it's \"quoted\"\n$(touch pwned) `x` \\ end";
  const script = entryScript([`A=${tricky}`, 'EMPTY=', 'PATH=/usr/bin:/bin'], ['/bin/sh', '-c', 'printf "%s" "$A"; printf "|%s|%s" "$EMPTY" "$1"', 'sh', "arg with 'quote'"]);
  writeFileSync(join(dir, 'entry'), script);
  const out = execFileSync('/bin/sh', [join(dir, 'entry')], { cwd: dir, encoding: 'utf8', env: { container: 'lxc' } });
  t.equal(out, `${tricky}||arg with 'quote'`);
  t.throws(() => entryScript(['BAD-NAME=x'], ['true']), /not a shell name/);
  t.equal(shellQuote("a'b"), `'a'\\''b'`);
});

t.test('the conmon shim and the stop hook quote their paths', async (t) => {
  const shim = runtimeShim({ containerId: 'slipway-d1', lxcPath: '/d/lxc', config: '/d/lxc.conf', mountLine: 'mount X || exit 1' });
  t.match(shim, /^lxc-execute -n 'slipway-d1' -P '\/d\/lxc' -f '\/d\/lxc.conf' -- \/bin\/sh \/.slipway-entry &$/m);
  t.ok(shim.indexOf('\nmount X || exit 1\n') > 0 && shim.indexOf('\nmount X') < shim.indexOf('\nlxc-execute'), 'the overlay is mounted before lxc-execute starts');
  t.match(stopHookScript({ counterFile: '/sys/fs/cgroup/memory/x/memory.oom_control', out: '/d/oom' }), /cat '\/sys\/fs\/cgroup\/memory\/x\/memory.oom_control' > '\/d\/oom.tmp'/);
});

t.test("with the dyno's network: its namespace is shared by path, resolv.conf bound read-only, no host network", async (t) => {
  const c = buildLxcConfig(input({ network: { path: '/run/netns/slipway0-0123abcd', resolvConf: '/var/lib/slipway/network/resolv.conf' } }));
  t.same(value(c, 'lxc.namespace.share.net'), ['/run/netns/slipway0-0123abcd']);
  t.same(value(c, 'lxc.net.0.type'), [], 'no lxc.net: the prepared namespace is the dyno\'s');
  t.ok(value(c, 'lxc.mount.entry').includes('/var/lib/slipway/network/resolv.conf etc/resolv.conf none bind,ro,nosuid,nodev,noexec,create=file 0 0'));
  t.throws(() => buildLxcConfig(input({ network: { path: '/run/netns/x\nlxc.cap.keep = sys_admin', resolvConf: '/r' } })), /newline/);
});
