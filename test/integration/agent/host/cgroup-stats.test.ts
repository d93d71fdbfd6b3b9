// readDynoStats on real cgroup v1 hierarchies (this machine kind; v2 is covered by the
// fixture tests in test/unit/agent/host/cgroup-stats.test.ts). A child process joins a fresh cgroup
// before it execs node, so every page it touches is charged there; it then allocates, spins
// and is OOM-killed on command, and the stats must follow.
import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { readDynoStats } from '../../../../agent/host/cgroup-stats.js';
import { detectCgroupVersion } from '../../../../agent/host/cgroups.js';
import { uniqueName } from '../../../helpers/host.js';

const ROOT = '/sys/fs/cgroup';
const CONTROLLERS = ['memory', 'cpuacct', 'pids'];
const MiB = 1024 * 1024;
const ALLOC = 50 * MiB;

// The dyno stand-in: one command per stdin line, one answer per stdout line.
const PROGRAM = `
let held;
require('readline').createInterface({ input: process.stdin }).on('line', (l) => {
  if (l === 'alloc') { held = Buffer.allocUnsafe(${ALLOC}).fill(0x5a); console.log('allocated ' + held.length); }
  if (l === 'spin') { const c0 = process.cpuUsage(); let us = 0; while (us < 300000) { const c = process.cpuUsage(c0); us = c.user + c.system; } console.log('spun ' + us); }
});
console.log('ready');
`;

interface Dyno { child: ChildProcess; pid: number; say(line: string): Promise<string>; exited: Promise<NodeJS.Signals | number | null> }

/** A uniquely named cgroup in the three hierarchies, removed in teardown (after its process). */
function makeCgroup(t: Test): { path: string; dirs: string[] } {
  const path = `/${uniqueName('slipway-test-stats-')}`;
  const dirs = CONTROLLERS.map((c) => join(ROOT, c, path));
  t.teardown(async () => {
    for (const dir of dirs) {
      // rmdir fails with EBUSY for a moment after the last process is reaped.
      for (let i = 0; i < 50 && existsSync(dir); i++) {
        try { rmdirSync(dir); } catch { await new Promise((r) => setTimeout(r, 50)); }
      }
    }
  });
  // Not recursive: the hierarchy must be mounted and the name must be new.
  for (const dir of dirs) mkdirSync(dir);
  return { path, dirs };
}

/** Starts the stand-in inside the cgroup: the shell joins every hierarchy, then execs node. */
function startDyno(t: Test, dirs: string[]): Promise<Dyno> {
  const child = spawn('/bin/sh', ['-c', 'for f in "$@"; do echo $$ > "$f/cgroup.procs" || exit 99; done; exec "$NODE" -e "$PROGRAM"', 'sh', ...dirs], {
    env: { ...process.env, NODE: process.execPath, PROGRAM },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  const lines = createInterface({ input: child.stdout });
  const waiting: ((l: string) => void)[] = [];
  lines.on('line', (l) => waiting.shift()?.(l));
  const next = () => new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the stand-in dyno did not answer within 10 s')), 10_000);
    waiting.push((l) => { clearTimeout(timer); resolve(l); });
    void exited.then((how) => { clearTimeout(timer); reject(new Error(`the stand-in dyno exited (${String(how)})`)); });
  });
  const ready = next();
  return ready.then(() => ({
    child,
    pid: child.pid!,
    exited,
    say(line: string) { const answer = next(); child.stdin.write(line + '\n'); return answer; },
  }));
}

async function stats(path: string) {
  const s = await readDynoStats(path, 1);
  if (!s) throw new Error(`no stats for ${path}`);
  return s;
}

const skip = detectCgroupVersion() !== 1 ? 'needs the cgroup v1 hierarchies (v2 is covered by fixture tests)' : false;

t.test('memory, pids and CPU of a real cgroup follow what its process does', { skip }, async (t) => {
  const cg = makeCgroup(t);
  const empty = await stats(cg.path);
  t.equal(empty.pids, 0, 'a new cgroup has no tasks');
  t.equal(empty.memoryUsageBytes, 0, 'and is charged nothing');

  const dyno = await startDyno(t, cg.dirs);
  // pids.current counts tasks (node's threads too): compare with the kernel's list for the pid.
  const tasks = () => readdirSync(`/proc/${dyno.pid}/task`).length;
  let before = await stats(cg.path);
  for (let i = 0; i < 20 && before.pids !== tasks(); i++) {
    await new Promise((r) => setTimeout(r, 100));
    before = await stats(cg.path);
  }
  t.equal(before.pids, tasks(), 'pids counts every task of the process');
  t.ok(before.pids >= 1, 'at least the process itself');

  t.equal(await dyno.say('alloc'), `allocated ${ALLOC}`, 'the process allocated and touched 50 MiB');
  const after = await stats(cg.path);
  const grew = after.workingSetBytes - before.workingSetBytes;
  // 50 MiB touched, plus what node allocated meanwhile (readline, a few V8 pages).
  t.ok(grew >= ALLOC * 0.98 && grew <= ALLOC + 16 * MiB, `working set grew by ${(grew / MiB).toFixed(1)} MiB for a 50 MiB buffer`);
  const rssGrew = after.rssBytes - before.rssBytes;
  t.ok(rssGrew >= ALLOC * 0.98 && rssGrew <= ALLOC + 16 * MiB, `RSS grew by ${(rssGrew / MiB).toFixed(1)} MiB`);
  t.ok(after.memoryUsageBytes >= after.workingSetBytes, 'usage includes the working set');
  t.ok(after.workingSetBytes >= after.rssBytes, 'the working set includes the anonymous memory');
  t.equal(after.swapBytes, 0, 'nothing swapped (this machine has no swap)');
  t.equal(after.oomKills, 0, 'no OOM kill yet');

  const cpuBefore = after.cpuUsageNs;
  // The process spins until it has used 300 ms of CPU by its own count (wall time would
  // depend on how busy the machine is); the cgroup must have counted at least that much.
  const spun = await dyno.say('spin');
  const ownUs = Number(/^spun (\d+)$/.exec(spun)?.[1]);
  t.ok(ownUs >= 300_000, `the process used ${(ownUs / 1000).toFixed(0)} ms of CPU`);
  const cpuUsed = (await stats(cg.path)).cpuUsageNs - cpuBefore;
  t.ok(cpuUsed >= ownUs * 1000 * 0.95 && cpuUsed <= ownUs * 1000 + 200e6, `the cgroup's CPU usage grew by ${(cpuUsed / 1e6).toFixed(0)} ms for ${(ownUs / 1000).toFixed(0)} ms used by its process`);

  dyno.child.kill('SIGKILL');
  await dyno.exited;
  t.equal((await stats(cg.path)).pids, 0, 'the killed process has left the cgroup');
  for (const dir of cg.dirs) rmdirSync(dir);
  t.equal(await readDynoStats(cg.path, 1), undefined, 'a removed cgroup reads as undefined');
});

t.test('an OOM kill inside the cgroup is counted', { skip }, async (t) => {
  const cg = makeCgroup(t);
  const dyno = await startDyno(t, cg.dirs);
  const base = await stats(cg.path);
  // Room for node's baseline plus 20 MiB: the 50 MiB buffer cannot fit.
  const limit = String(base.memoryUsageBytes + 20 * MiB);
  const memDir = join(ROOT, 'memory', cg.path);
  writeFileSync(join(memDir, 'memory.limit_in_bytes'), limit);
  if (existsSync(join(memDir, 'memory.memsw.limit_in_bytes'))) writeFileSync(join(memDir, 'memory.memsw.limit_in_bytes'), limit);
  await t.rejects(dyno.say('alloc'), /exited \(SIGKILL\)/, 'the kernel kills the process');
  t.equal((await stats(cg.path)).oomKills, 1, 'memory.oom_control counts the kill');
});
