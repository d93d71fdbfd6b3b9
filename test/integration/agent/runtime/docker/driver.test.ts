// The Docker driver against the real engine (docker.io 20.10, cgroupfs driver, cgroup v1 here),
// the busybox stack imported as an image, real overlay mounts and cgroups.
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DockerDriver } from '../../../../../agent/runtime/docker/driver.js';
import { stackFingerprint, stackImageRef } from '../../../../../agent/runtime/docker/stack-image.js';
import { WAIT_HEARTBEAT_MS } from '../../../../../agent/runtime/docker/exit.js';
import type { ContainerSpec, DynoHandle } from '../../../../../agent/runtime/driver.js';
import { dynoArgs, dynoEnv } from '../../../../../agent/dynos/entrypoint.js';
import { cgroupPids } from '../../../../../agent/host/cgroup-procs.js';
import { detectCgroupVersion } from '../../../../../agent/host/cgroups.js';
import { busyboxStack, cgroupChildren, eventually, mountsUnder, quietLogger, removeCgroupParent, uniqueName } from '../../../../helpers/host.js';
import { dockerContainersOf, dockerImageExists, engineProxy, removeDockerContainersNamed, removeDockerImage } from '../../../../helpers/docker.js';

const DYNO_UID = 64000;
const MB = 1024 * 1024;
const cgroupParent = `/${uniqueName('slipway-dtest-')}`;
const prefix = uniqueName('dk');
// A stack name of this test's own, so its image tag is the test's to delete.
const stackName = uniqueName('dtest-');
const stack = busyboxStack();
const driver = new DockerDriver({ cgroupParent, log: quietLogger() });
const handles: DynoHandle[] = [];
const startTimes: number[] = [];
let root: string;
let slug: string;

t.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'slipway-docker-'));
  slug = makeSlugDir(root);
});
// One teardown, in order, each step on its own: containers (which hold the /app binds), then
// mounts, then the image tag, the cgroup parent and last the temp dir, so that an rm -rf never
// runs through a live overlay even when a test failed half-way.
t.teardown(async () => {
  const steps: Array<[string, () => unknown]> = [
    ['destroy dynos', async () => { for (const h of handles) await driver.destroy(h).catch(() => undefined); }],
    ['remove containers', () => removeDockerContainersNamed(`slipway-${prefix}`)],
    ['unmount', () => { for (const m of root ? mountsUnder(root) : []) execFileSync('umount', ['-l', m]); }],
    ['remove image tag', async () => removeDockerImage(stackImageRef(stackName, await stackFingerprint(stack)))],
    ['remove cgroup parent', () => removeCgroupParent(cgroupParent)],
    ['remove temp dir', () => (root ? rm(root, { recursive: true, force: true }) : undefined)],
  ];
  for (const [what, step] of steps) {
    try { await step(); } catch (err) { console.error(`teardown: ${what}: ${String(err)}`); }
  }
});

/** A slug dir as the slug store leaves it: app/ and its files owned by the dyno user. */
function makeSlugDir(dir: string): string {
  const s = join(dir, 'slug');
  mkdirSync(join(s, 'app', '.profile.d'), { recursive: true });
  writeFileSync(join(s, 'app', 'hello.txt'), 'from the slug\n');
  writeFileSync(join(s, 'app', '.profile.d', 'greet.sh'), 'export GREETING="profile saw $CONFIG_VAR"\n');
  for (const p of ['app', 'app/hello.txt', 'app/.profile.d', 'app/.profile.d/greet.sh']) chownSync(join(s, p), DYNO_UID, DYNO_UID);
  return s;
}

function treeHash(dir: string): string {
  const h = createHash('sha256');
  const walk = (rel: string) => {
    for (const e of readdirSync(join(dir, rel), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      h.update(join(rel, e.name));
      if (e.isDirectory()) walk(join(rel, e.name));
      else h.update(readFileSync(join(dir, rel, e.name)));
    }
  };
  walk('');
  return h.digest('hex');
}

function spec(name: string, command: string, o: { memoryMb?: number; cpuQuotaPercent?: number } = {}): ContainerSpec {
  const id = `${prefix}-${name}`;
  return {
    dynoId: id, dir: join(root, 'dynos', id), stackName, stackDir: stack, slugDir: slug,
    args: dynoArgs(command, '/bin/sh'), env: dynoEnv({ name: 'web.1', env: { CONFIG_VAR: 'cv' } }, 5000), cwd: '/app',
    user: { uid: DYNO_UID, gid: DYNO_UID }, hostname: id,
    limits: { memoryBytes: (o.memoryMb ?? 64) * MB, cpuShares: 512, pidsLimit: 64, nofile: 1024, ...(o.cpuQuotaPercent ? { cpuQuotaPercent: o.cpuQuotaPercent } : {}) },
  };
}

async function start(s: ContainerSpec, d = driver): Promise<DynoHandle> {
  const began = performance.now();
  const h = await d.start(s);
  startTimes.push(performance.now() - began);
  handles.push(h);
  return h;
}

/** The dyno's output as written by the engine's json-file driver, read through log(). */
function output(h: DynoHandle, stream?: 'stdout' | 'stderr'): string {
  const src = driver.log(h);
  return readFileSync(src.path, 'utf8').split('\n').filter(Boolean)
    .map((l) => JSON.parse(l) as { log: string; stream: string })
    .filter((r) => !stream || r.stream === stream).map((r) => r.log).join('');
}

/** Whether the dyno's cgroup holds a process whose command is `name`. */
async function hasProcess(h: DynoHandle, name: string): Promise<true | undefined> {
  for (const pid of await cgroupPids(h.cgroupPath!, detectCgroupVersion())) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === name) return true;
    } catch { /* exited */ }
  }
  return undefined;
}

async function assertGone(t: Test, h: DynoHandle) {
  t.same(dockerContainersOf(h.dynoId), [], 'no container left');
  t.same(mountsUnder(h.dir), [], 'no mount left');
  t.notOk(existsSync(h.dir), 'no dyno dir left');
}

t.test('output reaches the json-file log and the exit code is reported', async (t) => {
  const h = await start(spec('exit', 'echo to-stdout; echo to-stderr >&2; exit 3'));
  t.match(h.containerId, /^[0-9a-f]{64}$/, 'the handle holds the engine id');
  t.equal(h.cgroupPath, `${cgroupParent}/${h.containerId}`, 'the cgroup is <cgroupParent>/<container id> (cgroupfs driver)');
  t.same(await driver.wait(h), { code: 3, signal: null, oomKilled: false });
  t.same(await driver.wait(h), { code: 3, signal: null, oomKilled: false }, 'wait can be called again');
  t.equal(driver.log(h).format, 'docker-json');
  t.equal(output(h, 'stdout'), 'to-stdout\n');
  t.equal(output(h, 'stderr'), 'to-stderr\n');
  t.same(dockerContainersOf(h.dynoId), [h.containerId], 'exactly one labelled container');
  t.equal((await driver.inspect(h)).status, 'stopped');
  await driver.destroy(h);
  await assertGone(t, h);
  await driver.destroy(h);
  t.pass('destroy is idempotent');
  t.equal((await driver.inspect(h)).status, 'missing');
});

t.test('/app is writable and reset on the next start; the slug on the host is unchanged', async (t) => {
  const before = treeHash(slug);
  const s = spec('fs', 'stat -c "owner=%u" /app; cat /app/hello.txt; echo "$GREETING"; test -f /app/new.txt && echo STALE; echo written > /app/new.txt; cat /app/new.txt; echo x > /tmp/t && echo tmp-ok');
  const h1 = await start(s);
  t.equal((await driver.wait(h1)).code, 0);
  const out1 = output(h1);
  t.match(out1, /owner=64000/, '/app belongs to the dyno user');
  t.match(out1, /from the slug/, 'the slug is at /app');
  t.match(out1, /profile saw cv/, '.profile.d ran');
  t.match(out1, /^written$/m, '/app is writable');
  t.match(out1, /tmp-ok/, 'the rest of the file system is writable');
  await driver.destroy(h1);
  const h2 = await start(s);
  t.equal((await driver.wait(h2)).code, 0);
  t.notMatch(output(h2), /STALE/, 'the next start sees the slug again, not the last writes');
  await driver.destroy(h2);
  t.equal(treeHash(slug), before, 'the slug dir is unchanged');
  t.notOk(existsSync(join(slug, 'app', 'new.txt')));
  t.ok(dockerImageExists(stackImageRef(stackName, await stackFingerprint(stack))), 'the stack image is tagged by its fingerprint');
});

t.test('inside: uid 64000, no new privileges, no capabilities, seccomp, limits from the spec', async (t) => {
  const script = 'echo "uid=$(id -u)"; grep -E "^(NoNewPrivs|Seccomp|CapEff):" /proc/self/status; echo "nofile=$(ulimit -n)"; echo "oom=$(cat /proc/self/oom_score_adj)"; echo "keys=$(cat /proc/keys 2>/dev/null | wc -c)"; (echo 1 > /proc/sys/kernel/ns_last_pid) 2>/dev/null || echo procsys-ro; sleep 30';
  const h = await start(spec('priv', script, { memoryMb: 48, cpuQuotaPercent: 50 }));
  await eventually('the script to reach its sleep', () => /procsys-ro/.test(output(h)) || undefined, 10_000);
  const out = output(h);
  t.match(out, /uid=64000/);
  t.match(out, /NoNewPrivs:\s+1/);
  t.match(out, /CapEff:\s+0000000000000000/);
  t.match(out, /Seccomp:\s+2/, 'a seccomp filter is loaded');
  const secOpts = JSON.parse(execFileSync('docker', ['inspect', '--format', '{{json .HostConfig.SecurityOpt}}', h.containerId], { encoding: 'utf8' })) as string[];
  t.ok(secOpts.some((o) => o.startsWith('seccomp={')), "it is slipway's profile (seccomp/profile.ts), not the engine's default");
  t.match(out, /nofile=1024/);
  t.match(out, /oom=500/);
  t.match(out, /keys=0/, '/proc/keys is masked');
  t.match(out, /procsys-ro/, '/proc/sys is read-only');
  const cg = (ctl: string, file: string) => readFileSync(`/sys/fs/cgroup/${ctl}${h.cgroupPath}/${file}`, 'utf8').trim();
  t.equal(Number(cg('memory', 'memory.limit_in_bytes')), 48 * MB);
  t.equal(Number(cg('memory', 'memory.memsw.limit_in_bytes')), 48 * MB, 'no swap: memory+swap = memory');
  t.equal(cg('pids', 'pids.max'), '64');
  t.equal(cg('cpu', 'cpu.shares'), '512');
  t.equal(cg('cpu', 'cpu.cfs_quota_us'), '50000', 'half a core');
  const stats = await driver.stats(h);
  t.ok(stats && stats.pids >= 2 && stats.memoryUsageBytes > 0, 'stats come from the cgroup');
  await driver.stop(h, 2_000);
  await driver.destroy(h);
  t.equal(await driver.stats(h), undefined, 'no stats once the cgroup is gone');
});

t.test('an OOM kill is reported as such; a docker kill -s KILL from outside is not', async (t) => {
  const hog = await start(spec('oom', 'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo survived', { memoryMb: 32 }));
  const oom = await driver.wait(hog);
  t.equal(oom.oomKilled, true, 'the cgroup OOM event marks it');
  t.notMatch(output(hog), /survived/);
  await driver.destroy(hog);
  const victim = await start(spec('kill9', 'sleep 300', { memoryMb: 32 }));
  execFileSync('docker', ['kill', '-s', 'KILL', victim.containerId]);
  t.same(await driver.wait(victim), { code: 137, signal: 'SIGKILL', oomKilled: false });
  await driver.destroy(victim);
});

t.test('stop: SIGTERM reaches the app; one that ignores it is killed after the grace', async (t) => {
  const polite = await start(spec('term', 'trap "echo got-term; exit 0" TERM; sleep 300 & wait'));
  await eventually('the polite dyno to run its sleep', () => hasProcess(polite, 'sleep'), 10_000);
  const a = await driver.stop(polite, 10_000);
  t.equal(a.forced, false, 'it exited within the grace');
  t.equal(a.exit.code, 0);
  t.match(output(polite), /got-term/, 'the app (not pid 1) saw SIGTERM');
  await driver.destroy(polite);
  const stubborn = await start(spec('ignore', 'trap "" TERM; sleep 300'));
  await eventually('the stubborn dyno to run its sleep', () => hasProcess(stubborn, 'sleep'), 10_000);
  const began = Date.now();
  const b = await driver.stop(stubborn, 1_000);
  t.equal(b.forced, true, 'the grace ran out (R12)');
  t.ok(Date.now() - began >= 1_000, 'the grace was waited for');
  t.same(b.exit, { code: 137, signal: 'SIGKILL', oomKilled: false });
  await driver.destroy(stubborn);
  await assertGone(t, stubborn);
});

t.test('recover() in a second driver finds a running dyno, and an exited one with its exit', async (t) => {
  const h = await start(spec('recover', 'i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.1; done'));
  const fresh = new DockerDriver({ cgroupParent, log: quietLogger() });
  const r = await fresh.recover(h.dir);
  t.ok(r, 'found');
  t.equal(r!.running, true);
  t.equal(r!.handle.containerId, h.containerId);
  t.equal(fresh.log(r!.handle).path, driver.log(h).path, 'the same log');
  await eventually('ticks in the log', () => /tick 3/.test(output(h)) || undefined, 10_000);
  const stopped = await fresh.stop(r!.handle, 2_000);
  t.equal(stopped.exit.oomKilled, false);
  const again = await new DockerDriver({ cgroupParent, log: quietLogger() }).recover(h.dir);
  t.equal(again?.running, false, 'an exited dyno is found, not running');
  t.same(await fresh.wait(again!.handle), stopped.exit, 'wait() gives the recorded exit');
  await fresh.destroy(r!.handle);
  t.equal(await fresh.recover(h.dir), undefined, 'nothing to recover once destroyed');
  await assertGone(t, h);
});

t.test('a leftover container of the same dyno id is replaced, never doubled', async (t) => {
  const s = spec('leftover', 'echo second');
  const image = stackImageRef(stackName, await stackFingerprint(stack));
  execFileSync('docker', ['create', '--name', `slipway-${s.dynoId}`, '--label', `slipway.dyno=${s.dynoId}`, image, 'true']);
  const h = await start(s);
  t.same(dockerContainersOf(s.dynoId), [h.containerId], 'only the new container is left');
  t.equal((await driver.wait(h)).code, 0);
  await driver.destroy(h);
  await assertGone(t, h);
});

t.test('wait() survives dropped connections and an engine that is away for a while', async (t) => {
  const proxy = await engineProxy(join(root, 'engine.sock'));
  t.teardown(() => proxy.close());
  const d = new DockerDriver({ cgroupParent, log: quietLogger(), socketPath: proxy.path });
  const h = await start(spec('drop', 'sleep 2; exit 5'), d);
  const exited = d.wait(h);
  await new Promise((r) => setTimeout(r, 300));
  await proxy.cut();
  t.ok(proxy.dropped >= 1, 'the long poll was cut');
  await new Promise((r) => setTimeout(r, 2_500));
  await proxy.resume();
  t.same(await exited, { code: 5, signal: null, oomKilled: false }, 'the exit is read once the engine answers again');
  await d.destroy(h);
  await assertGone(t, h);
  // Only the connection drops; the engine never looks away. The poll's socket is dead without
  // any call failing, and the heartbeat inspect has to notice the exit.
  const h2 = await start(spec('blip', 'sleep 1; exit 6'), d);
  const exited2 = d.wait(h2);
  await new Promise((r) => setTimeout(r, 300));
  await proxy.cut();
  await proxy.resume();
  const began = Date.now();
  t.same(await exited2, { code: 6, signal: null, oomKilled: false }, 'the exit is seen without the lost poll');
  t.ok(Date.now() - began < WAIT_HEARTBEAT_MS + 2_000, 'within about one heartbeat');
  await d.destroy(h2);
});

t.test('an engine that cannot be reached is RUNTIME_UNAVAILABLE', async (t) => {
  const d = new DockerDriver({ cgroupParent, log: quietLogger(), socketPath: join(root, 'no-such.sock') });
  await t.rejects(d.start(spec('down', 'true')), { code: 'RUNTIME_UNAVAILABLE' });
  await t.rejects(d.inspect({ driver: 'docker', dynoId: 'x', containerId: 'x', dir: root, startedAt: '' }), { code: 'RUNTIME_UNAVAILABLE' });
});

t.test('nothing of the driver is left on the host', async (t) => {
  const named = execFileSync('docker', ['ps', '-aq', '--filter', `name=^/slipway-${prefix}`], { encoding: 'utf8' }).trim();
  t.equal(named, '', 'no containers');
  t.same(cgroupChildren(cgroupParent), [], 'no cgroups');
  t.same(mountsUnder(root), [], 'no mounts');
});

t.test('start times', async (t) => {
  const sorted = [...startTimes].sort((a, b) => a - b);
  t.comment(`start(): n=${sorted.length} first=${startTimes[0]?.toFixed(0)} ms (includes the stack import) median=${sorted[Math.floor(sorted.length / 2)]?.toFixed(0)} ms max=${sorted.at(-1)?.toFixed(0)} ms`);
  t.ok(sorted.length > 0);
});
