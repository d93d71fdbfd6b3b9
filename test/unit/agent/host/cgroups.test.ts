// Covers the cgroup v2 paths on fixture files of v2's interface (this machine runs v1;
// EC2's current images run v2), and v1 the same way.
import t from 'tap';
import { join } from 'node:path';
import { detectCgroupVersion, oomCounterFile, parseOomKills, readOomKills } from '../../../../agent/host/cgroups.js';

const fixtures = join(import.meta.dirname, '../../../fixtures');

t.test('detects v2 from cgroup.controllers and v1 otherwise', async (t) => {
  t.equal(detectCgroupVersion(join(fixtures, 'cgroup-v2')), 2);
  t.equal(detectCgroupVersion(join(fixtures, 'cgroup-v1')), 1);
});

t.test('reads the OOM kill counter in both layouts', async (t) => {
  t.equal(await readOomKills('/slipway/d1', 2, join(fixtures, 'cgroup-v2')), 2);
  t.equal(await readOomKills('/slipway/d1', 1, join(fixtures, 'cgroup-v1')), 1);
  t.equal(await readOomKills('/slipway/none', 2, join(fixtures, 'cgroup-v2')), undefined, 'a missing cgroup is unknown, not 0');
  t.equal(oomCounterFile('/a/b', 2, '/r'), '/r/a/b/memory.events');
  t.equal(oomCounterFile('/a/b', 1, '/r'), '/r/memory/a/b/memory.oom_control');
});

t.test('an absent oom_kill line counts 0; oom (not oom_kill) is not confused with it', async (t) => {
  t.equal(parseOomKills('oom_kill_disable 0\nunder_oom 0\n'), 0);
  t.equal(parseOomKills('oom 5\noom_kill 0\n'), 0);
});

t.test('v1 cleanup covers every mounted hierarchy, named ones included', async (t) => {
  const { mkdtempSync, mkdirSync, symlinkSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { cgroupDirs } = await import('../../../../agent/host/cgroups.js');
  const root = mkdtempSync(join(tmpdir(), 'slipway-cg-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  for (const h of ['memory', 'cpu', 'systemd', 'unified']) mkdirSync(join(root, h));
  symlinkSync('cpu', join(root, 'cpu,cpuacct'));
  t.same(cgroupDirs('/slipway/x', 1, root).sort(), ['cpu', 'memory', 'systemd', 'unified'].map((h) => join(root, h, 'slipway/x')));
  t.same(cgroupDirs('/slipway/x', 2, root), [join(root, 'slipway/x')]);
});
