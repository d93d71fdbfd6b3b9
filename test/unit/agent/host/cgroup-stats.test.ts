// readDynoStats over fixture trees of both cgroup interfaces.
//
// test/fixtures/cgroup-v1/.../d1 holds the files of a real v1 cgroup on this machine kind
// (Debian 12, kernel 6.x) with a node process holding 48 MB and an 8 MB file in page cache;
// swap (12 MiB in memory.stat and memory.memsw) and one OOM kill were added, since the
// machine has no swap. d2 is a 4.9-era kernel booted without swap accounting (no memsw file,
// no swap lines, no oom_kill line) and without the pids hierarchy.
// test/fixtures/cgroup-v2/.../d1 follows Documentation/admin-guide/cgroup-v2.rst (memory.stat
// keys in a 6.x kernel's order); d2 is a v2 group whose parent enables neither cpu nor pids
// (cpu.stat then has only the three usage keys) on a kernel booted with swapaccount=0.
import t from 'tap';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFlatKeyed, parseSingle, readDynoStats } from '../../../../agent/host/cgroup-stats.js';

const fixtures = join(import.meta.dirname, '../../../fixtures');
const V1 = join(fixtures, 'cgroup-v1');
const V2 = join(fixtures, 'cgroup-v2');

function scratch(t: { teardown(fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-cgstats-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('v1: every field from its own file, working set as the kubelet computes it', async (t) => {
  t.same(await readDynoStats('/slipway/d1', 1, V1), {
    memoryUsageBytes: 118992896,
    workingSetBytes: 118992896 - 27541504, // usage - total_inactive_file
    rssBytes: 59121664, // total_rss, not the local rss line
    swapBytes: 12582912, // total_swap
    cpuUsageNs: 573481710,
    pids: 7,
    oomKills: 1,
  });
});

t.test('v1 on an older kernel without swap accounting or the pids hierarchy: those fields read 0', async (t) => {
  t.same(await readDynoStats('/slipway/d2', 1, V1), {
    memoryUsageBytes: 35246080,
    workingSetBytes: 35246080 - 3149824,
    rssBytes: 31031296,
    swapBytes: 0,
    cpuUsageNs: 1284113310,
    pids: 0,
    oomKills: 0,
  });
});

t.test('v1 swap falls back to memsw.usage - usage when memory.stat has no total_swap', async (t) => {
  const root = scratch(t);
  cpSync(V1, root, { recursive: true });
  const stat = join(root, 'memory/slipway/d1/memory.stat');
  writeFileSync(stat, readFileSync(stat, 'utf8').split('\n').filter((l) => !/^(total_)?swap /.test(l)).join('\n'));
  const s = await readDynoStats('/slipway/d1', 1, root);
  t.equal(s?.swapBytes, 131575808 - 118992896);
});

t.test('v1 working set is floored at 0 when the fuzzy usage counter lags inactive_file', async (t) => {
  // usage_in_bytes is batched per CPU and can read below the exact memory.stat counters.
  const root = scratch(t);
  mkdirSync(join(root, 'memory/g'), { recursive: true });
  writeFileSync(join(root, 'memory/g/memory.usage_in_bytes'), '4096\n');
  writeFileSync(join(root, 'memory/g/memory.stat'), 'total_inactive_file 8192\ntotal_rss 0\n');
  const s = await readDynoStats('/g', 1, root);
  t.equal(s?.workingSetBytes, 0);
  t.equal(s?.memoryUsageBytes, 4096);
});

t.test('v2: memory.current, anon, swap.current, usage_usec in ns, memory.events oom_kill', async (t) => {
  t.same(await readDynoStats('/slipway/d1', 2, V2), {
    memoryUsageBytes: 121065472,
    workingSetBytes: 121065472 - 27541504, // memory.current - inactive_file
    rssBytes: 58982400, // anon
    swapBytes: 12582912,
    cpuUsageNs: 573481 * 1000,
    pids: 7,
    oomKills: 2,
    throttledPeriods: 0, // cpu.stat nr_throttled; no memory.peak (a kernel before 5.19)
  });
});

t.test('the peak and the throttle count (exit records): read when their files are there, absent otherwise', async (t) => {
  const root = scratch(t);
  cpSync(V1, join(root, 'v1'), { recursive: true });
  mkdirSync(join(root, 'v1/cpu/slipway/d1'), { recursive: true });
  writeFileSync(join(root, 'v1/memory/slipway/d1/memory.max_usage_in_bytes'), '134217728\n');
  writeFileSync(join(root, 'v1/cpu/slipway/d1/cpu.stat'), 'nr_periods 120\nnr_throttled 17\nthrottled_time 912000000\n');
  t.match(await readDynoStats('/slipway/d1', 1, join(root, 'v1')), { peakMemoryBytes: 134217728, throttledPeriods: 17, oomKills: 1 });
  const d2 = await readDynoStats('/slipway/d2', 1, join(root, 'v1'));
  t.notOk(d2 && 'peakMemoryBytes' in d2, 'v1 without max_usage_in_bytes: no peak (unknown, not 0)');
  t.notOk(d2 && 'throttledPeriods' in d2, 'v1 without the cpu hierarchy: no throttle count');
  cpSync(V2, join(root, 'v2'), { recursive: true });
  writeFileSync(join(root, 'v2/slipway/d1/memory.peak'), '125829120\n');
  t.match(await readDynoStats('/slipway/d1', 2, join(root, 'v2')), { peakMemoryBytes: 125829120, throttledPeriods: 0 });
  const v2d2 = await readDynoStats('/slipway/d2', 2, join(root, 'v2'));
  t.notOk(v2d2 && 'throttledPeriods' in v2d2, 'v2 whose parent does not enable cpu: cpu.stat has no nr_throttled');
});

t.test('v2 without swap accounting or the pids controller: those fields read 0', async (t) => {
  t.same(await readDynoStats('/slipway/d2', 2, V2), {
    memoryUsageBytes: 36417536,
    workingSetBytes: 36417536 - 3149824,
    rssBytes: 31031296,
    swapBytes: 0,
    cpuUsageNs: 1284113 * 1000,
    pids: 0,
    oomKills: 0,
  });
});

t.test('a cgroup that does not exist reads as undefined, in both layouts', async (t) => {
  t.equal(await readDynoStats('/slipway/gone', 1, V1), undefined);
  t.equal(await readDynoStats('/slipway/gone', 2, V2), undefined);
  // v1: the memory hierarchy decides; cpuacct or pids alone do not make a dyno's cgroup.
  const root = scratch(t);
  mkdirSync(join(root, 'pids/only'), { recursive: true });
  writeFileSync(join(root, 'pids/only/pids.current'), '3\n');
  t.equal(await readDynoStats('/only', 1, root), undefined);
});

t.test('a cgroup that exists with no readable file reads as zeros, not undefined', async (t) => {
  // v2 before the parent enabled any controller: the directory is there, its files are not.
  const root = scratch(t);
  mkdirSync(join(root, 'empty'));
  t.same(await readDynoStats('/empty', 2, root), {
    memoryUsageBytes: 0, workingSetBytes: 0, rssBytes: 0, swapBytes: 0, cpuUsageNs: 0, pids: 0, oomKills: 0,
  });
});

t.test('a read error other than absence is surfaced, not reported as 0', async (t) => {
  // EISDIR stands in for EACCES/EIO, which root (these tests) cannot provoke on a plain file.
  const root = scratch(t);
  mkdirSync(join(root, 'g/memory.current'), { recursive: true });
  await t.rejects(readDynoStats('/g', 2, root), { code: 'INTERNAL' });
});

t.test('parsers: flat-keyed files by key, not by position; single values tolerate whitespace', async (t) => {
  const m = parseFlatKeyed('oom_kill_disable 0\nunder_oom 0\noom_kill 3\n');
  t.equal(m.get('oom_kill'), 3);
  t.equal(m.get('oom'), undefined);
  t.equal(parseFlatKeyed('garbage\n\nx notanumber\n').size, 0);
  t.equal(parseSingle('42\n'), 42);
  t.equal(parseSingle(undefined), 0);
  t.equal(parseSingle('max\n'), 0);
});
