// "SIGTERM to every process of the dyno" reads a cgroup's processes and signals them all. For
// the root cgroup that would be every process on the host: the Docker driver once took `/` from
// /proc/PID/cgroup of a container's exiting pid 1 (a zombie shows `/` under cgroup v1) and the
// benchmark's SIGKILL then took down the host's dockerd, shells and all. These tests hold the
// two guards: cgroup-procs refuses any cgroup shallower than <parent>/<name>, and the Docker
// driver only takes a pid's cgroup that lies below its parent.
//
// The cgroup trees are temp dirs passed as `root` (a real cgroupfs cannot hold a root-level
// cgroup.procs we control); the process signalled is a real child.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertDynoCgroup, cgroupPids, procsDir, signalCgroup } from '../../../../agent/host/cgroup-procs.js';
import { cgroupOfPid } from '../../../../agent/runtime/docker/driver.js';

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-cgprocs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('only <parent>/<name> cgroups are accepted', async (t) => {
  for (const ok of ['/slipway/slipway-web.1', '/slipway-test-1/x/y', '/slipway/a/']) t.equal(assertDynoCgroup(ok), ok, ok);
  for (const bad of ['/', '', '//', '/slipway', 'slipway/x', '/slipway/..', '/slipway/../x', '/./x', '/a/./b']) {
    t.throws(() => assertDynoCgroup(bad), { code: 'RUNTIME_FAILED', message: /not a dyno cgroup/ }, JSON.stringify(bad));
    t.throws(() => procsDir(bad, 1), { code: 'RUNTIME_FAILED' }, `procsDir ${JSON.stringify(bad)}`);
  }
  t.equal(procsDir('/slipway/d', 1, '/r'), '/r/pids/slipway/d');
  t.equal(procsDir('/slipway/d', 2, '/r'), '/r/slipway/d');
});

t.test('signalCgroup("/") refuses and signals nobody; a dyno cgroup is signalled in full', async (t) => {
  const root = tempDir(t);
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  t.teardown(() => { child.kill('SIGKILL'); });
  await new Promise((r) => child.once('spawn', r));
  const exited = new Promise<NodeJS.Signals | null>((r) => child.once('exit', (_c, sig) => r(sig)));
  // The "root cgroup" of this fake v2 tree lists the child, as the real root lists everything.
  writeFileSync(join(root, 'cgroup.procs'), `${child.pid}\n`);
  await t.rejects(signalCgroup('/', 2, 'SIGKILL', root), { code: 'RUNTIME_FAILED' });
  await t.rejects(cgroupPids('/slipway', 2, root), { code: 'RUNTIME_FAILED' });
  t.equal(child.exitCode, null, 'the process is still running');
  t.equal(child.signalCode, null);

  const dyno = join(root, 'slipway', 'slipway-web.1');
  mkdirSync(join(dyno, 'child'), { recursive: true });
  writeFileSync(join(dyno, 'cgroup.procs'), '');
  writeFileSync(join(dyno, 'child', 'cgroup.procs'), `${child.pid}\n`);
  t.same(await cgroupPids('/slipway/slipway-web.1', 2, root), [child.pid], 'nested cgroups are walked');
  t.equal(await signalCgroup('/slipway/slipway-web.1', 2, 'SIGKILL', root), 1);
  t.equal(await exited, 'SIGKILL');
});

t.test('the Docker driver takes a pid\'s cgroup only when it lies below its parent', async (t) => {
  const proc = tempDir(t);
  const write = (pid: number, text: string) => {
    mkdirSync(join(proc, String(pid)), { recursive: true });
    writeFileSync(join(proc, String(pid), 'cgroup'), text);
  };
  // A running container's pid 1 (v1), the same pid as a zombie (what the kernel shows then),
  // a cgroup of a sibling parent with the same prefix, and a v2 line.
  write(10, '12:pids:/slipway/3f9a\n4:memory:/slipway/3f9a\n0::/\n');
  write(11, '12:pids:/\n4:memory:/\n0::/\n');
  write(12, '12:pids:/slipway-other/3f9a\n');
  write(13, '0::/slipway/3f9a\n');
  t.equal(await cgroupOfPid(10, 1, '/slipway', proc), '/slipway/3f9a');
  t.equal(await cgroupOfPid(11, 1, '/slipway', proc), undefined, 'a zombie\'s `/` is not taken');
  t.equal(await cgroupOfPid(12, 1, '/slipway', proc), undefined, 'a prefix is not a parent');
  t.equal(await cgroupOfPid(13, 2, '/slipway/', proc), '/slipway/3f9a');
  t.equal(await cgroupOfPid(99, 1, '/slipway', proc), undefined, 'a pid already gone');
});
