// The runc driver against real runc, conmon, overlayfs and cgroups (v1 on this machine).
import t from 'tap';
import { chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { RuncDriver } from '../../../../../agent/runtime/runc/driver.js';
import { detectCgroupVersion } from '../../../../../agent/host/cgroups.js';
import type { ContainerSpec, DynoHandle } from '../../../../../agent/runtime/driver.js';
import { busyboxStack, cgroupChildren, mountsUnder, processesMentioning, quietLogger, removeCgroupParent, runcContainers, tempDir, uniqueName } from '../../../../helpers/host.js';

const cgroupParent = `/${uniqueName('slipway-test-')}`;
const driver = new RuncDriver({ cgroupParent, log: quietLogger() });
const stack = busyboxStack();
const prefix = uniqueName('rt');
const handles: DynoHandle[] = [];

t.teardown(async () => {
  for (const h of handles) await driver.destroy(h).catch(() => undefined);
  removeCgroupParent(cgroupParent);
});

async function slugDir(root: string): Promise<string> {
  const slug = join(root, 'slug');
  await mkdir(join(slug, 'app', '.profile.d'), { recursive: true });
  await writeFile(join(slug, 'app', 'hello.txt'), 'from the slug\n');
  await writeFile(join(slug, 'app', '.profile.d', 'greet.sh'), 'export GREETING="profile says $CONFIG_VAR"\n');
  // The slug store gives slug files to the dyno user; do the same here.
  for (const p of ['app', 'app/hello.txt', 'app/.profile.d', 'app/.profile.d/greet.sh']) await chown(join(slug, p), 64000, 64000);
  return slug;
}

function spec(dir: string, slug: string, id: string, script: string, memoryMb = 64): ContainerSpec {
  return {
    dynoId: id, dir: join(dir, 'dynos', id), stackName: 'busybox', stackDir: stack, slugDir: slug,
    args: ['/bin/sh', '-c', script], env: ['PATH=/bin', 'CONFIG_VAR=cv', 'HOME=/app'], cwd: '/app',
    user: { uid: 64000, gid: 64000 }, hostname: id,
    limits: { memoryBytes: memoryMb * 1024 * 1024, cpuShares: 512, pidsLimit: 64, nofile: 1024 },
  };
}

async function logText(h: DynoHandle): Promise<string> {
  return readFile(join(h.dir, 'log'), 'utf8').catch(() => '');
}

t.test('runs a command as the dyno user on the overlay and reports its exit code', async (t) => {
  const dir = await tempDir(t);
  const slug = await slugDir(dir);
  const id = `${prefix}-exit`;
  const h = await driver.start(spec(dir, slug, id, 'id -u; cat /app/hello.txt; echo written > /app/new.txt; cat /app/new.txt; exit 7'));
  handles.push(h);
  t.ok(h.pid && h.pid > 0, 'the container process has a pid');
  const exit = await driver.wait(h);
  t.same(exit, { code: 7, signal: null, oomKilled: false });
  const log = await logText(h);
  t.match(log, /stdout F 64000\n/, 'runs as uid 64000, not root');
  t.match(log, /from the slug/, 'the slug is at /app');
  t.match(log, /stdout F written/, '/app is writable');
  t.notOk(existsSync(join(slug, 'app', 'new.txt')), 'writes land in the upper dir, not the slug');
  await driver.destroy(h);
  t.same(runcContainers(RuncDriver.containerId(id)), [], 'container removed');
  t.same(mountsUnder(dir), [], 'overlay unmounted');
  t.notOk(existsSync(h.dir), 'dyno dir removed');
});

t.test('memory and pids limits come from the spec', async (t) => {
  const dir = await tempDir(t);
  const slug = await slugDir(dir);
  const id = `${prefix}-limits`;
  const h = await driver.start(spec(dir, slug, id, 'sleep 30', 48));
  handles.push(h);
  // Both hierarchies: this machine runs cgroup v1, the VM suite's guest v2 (scripts/vm/run.sh).
  const v2 = detectCgroupVersion() === 2;
  const mem = await readFile(v2 ? `/sys/fs/cgroup${h.cgroupPath}/memory.max` : `/sys/fs/cgroup/memory${h.cgroupPath}/memory.limit_in_bytes`, 'utf8');
  t.equal(Number(mem), 48 * 1024 * 1024);
  const pids = await readFile(v2 ? `/sys/fs/cgroup${h.cgroupPath}/pids.max` : `/sys/fs/cgroup/pids${h.cgroupPath}/pids.max`, 'utf8');
  t.equal(pids.trim(), '64');
  t.equal((await driver.inspect(h)).status, 'running');
  await driver.destroy(h);
  t.equal((await driver.inspect(h)).status, 'missing');
});

t.test('SIGTERM reaches the app even though pid 1 ignores it; a stubborn app is killed after the grace', async (t) => {
  const dir = await tempDir(t);
  const slug = await slugDir(dir);
  const polite = await driver.start(spec(dir, slug, `${prefix}-polite`, 'sleep 300 & wait $!'));
  handles.push(polite);
  const r1 = await driver.stop(polite, 5_000);
  t.equal(r1.forced, false, 'exited within the grace');
  t.equal(r1.exit.code, 143, 'the app died of SIGTERM (128+15)');
  await driver.destroy(polite);

  const stubborn = await driver.start(spec(dir, slug, `${prefix}-stubborn`, "trap '' TERM; sleep 300 & wait $!; sleep 300"));
  handles.push(stubborn);
  // The trap must be installed before the signal: wait until the shell runs its child.
  await new Promise((r) => setTimeout(r, 300));
  const started = Date.now();
  const r2 = await driver.stop(stubborn, 500);
  t.equal(r2.forced, true, 'grace ran out, SIGKILL sent');
  t.ok(Date.now() - started < 8_000, 'stop is bounded');
  t.equal(r2.exit.code, 137);
  await driver.destroy(stubborn);
});

t.test('an OOM kill is detected from the cgroup counter', async (t) => {
  const dir = await tempDir(t);
  const slug = await slugDir(dir);
  const h = await driver.start(spec(dir, slug, `${prefix}-oom`, 'x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo survived', 32));
  handles.push(h);
  const exit = await driver.wait(h);
  t.equal(exit.oomKilled, true, 'the cgroup counted an OOM kill');
  t.notMatch(await logText(h), /survived/);
  await driver.destroy(h);
});

t.test('a plain SIGKILL from outside is not reported as OOM', async (t) => {
  const dir = await tempDir(t);
  const slug = await slugDir(dir);
  const h = await driver.start(spec(dir, slug, `${prefix}-kill9`, 'sleep 300'));
  handles.push(h);
  await driver.signal(h, 'SIGKILL');
  const exit = await driver.wait(h);
  t.same(exit, { code: 137, signal: 'SIGKILL', oomKilled: false });
  await driver.destroy(h);
});

t.test('nothing of the driver is left on the host', async (t) => {
  t.same(runcContainers(`slipway-${prefix}`), [], 'no runc containers');
  t.same(cgroupChildren(cgroupParent), [], 'no cgroups');
  t.same(processesMentioning(`slipway-${prefix}`), [], 'no conmon or dyno processes');
});
