// The warning before R15 through the dyno owner (memory-watch-hook.ts): samples the fake driver
// makes up every 5 s of fake time, the line in the dyno's log stream and the event handed to the
// link. The projection's own rules are memory-projection.test.ts's.
import t from 'tap';
import type { MemoryWarning } from '../../../../shared/protocol.js';
import { memoryWatchSettings, type MemoryWatchSettings } from '../../../../agent/dynos/memory-watch-hook.js';
import { dynoSetup, MB, workerSpec } from '../../../helpers/fake-dyno.js';

function world(t: Parameters<typeof dynoSetup>[0], pressure?: () => number | undefined) {
  const s = dynoSetup(t);
  const lines: string[] = [];
  const warnings: MemoryWarning[] = [];
  const r14 = { count: 0 };
  const logs = { async attach() {}, system: (_d: unknown, text: string) => { lines.push(text); }, async flush() {}, async detach() {} };
  const memory: MemoryWatchSettings = { ...memoryWatchSettings({ r15Multiple: 2, r14IntervalMs: 60_000, warnHorizonMs: 600_000 }, (w) => warnings.push(w)), r14: () => { r14.count++; }, ...(pressure ? { pressure } : {}) };
  const d = s.make(workerSpec(), { logs, memory });
  /** One memory round, 5 s after the last, reading `bytes` (a 512 MB quota: the R15 line is 1 GiB). */
  const sample = async (bytes: number) => {
    s.clock.tick(5_000);
    s.driver.memory = { workingSetBytes: bytes, swapBytes: 0 };
    await d.sampleMemory();
  };
  const projectedLines = () => lines.filter((l) => l.startsWith('Memory projected'));
  return { s, d, lines, warnings, sample, projectedLines, r14 };
}

t.test('a leaking dyno gets one `Memory projected to reach the R15 limit` line and one warning event, then R15', async (t) => {
  const w = world(t);
  w.d.begin();
  await w.s.until('up');
  for (let i = 0; i < 170; i++) await w.sample(300 * MB + 2.5 * MB * i);
  t.same(w.warnings, [], 'nothing while R15 is more than 10 min away');
  await w.sample(300 * MB + 2.5 * MB * 170);
  t.same(w.projectedLines(), ['Memory projected to reach the R15 limit in ~10 min'], 'the line, in the dyno log stream');
  t.equal(w.warnings.length, 1);
  t.match(w.warnings[0], {
    dynoId: 'app1-worker-1-abc', app: 'app1', name: 'worker.1', workingSetBytes: 725 * MB, limitBytes: 1024 * MB, slopeBytesPerSec: 0.5 * MB,
  });
  t.ok(Math.abs(w.warnings[0]!.projectedMs - 598_000) <= 1, `projected ${w.warnings[0]!.projectedMs} ms (299 MB at 0.5 MB/s)`);
  t.notOk('pressureSome10' in w.warnings[0]!, 'no PSI known for the fake container');
  for (let i = 171; i < 250; i++) await w.sample(300 * MB + 2.5 * MB * i);
  t.equal(w.warnings.length, 1, 'once per episode, not every sample');
  t.equal(w.projectedLines().length, 1);
  t.equal(w.d.current, 'up', 'a warning only');
  // The leak goes on to the line: R15, and the restarted container starts a new episode.
  await w.sample(1030 * MB);
  await w.s.until('crashed');
  t.ok(w.lines.some((l) => l.startsWith('Error R15')), 'R15 after the warning');
  t.equal(w.warnings.length, 1, 'the R15 sample itself warns of nothing');
  await w.s.clock.runNext();
  await w.s.until('up', 2);
  for (let i = 0; i < 171; i++) await w.sample(300 * MB + 2.5 * MB * i);
  t.equal(w.warnings.length, 2, 'the new container leaks the same way: warned again');
  await w.d.stop(1000);
});

t.test('a steady dyno never gets the warning, even over its quota (R14 only)', async (t) => {
  const w = world(t);
  w.d.begin();
  await w.s.until('up');
  for (let i = 0; i < 500; i++) await w.sample((600 + (i % 3) * 4) * MB);
  t.same(w.warnings, []);
  t.same(w.projectedLines(), []);
  t.ok(w.lines.some((l) => l.startsWith('Error R14')), 'over the quota it is R14, as before');
  // 500 samples 5 s apart over the quota, R14 at most once a minute: 1 + 2,495 s / 60 s.
  t.equal(w.r14.count, w.lines.filter((l) => l.startsWith('Error R14')).length, `each R14 line reached the metrics' counter (${w.r14.count})`);
  t.equal(w.r14.count, 42, 'R14 rate-limited to once a minute');
  await w.d.stop(1000);
});

t.test('memory pressure (PSI) rides in the event and brings the warning earlier', async (t) => {
  const w = world(t, () => 40);
  w.d.begin();
  await w.s.until('up');
  for (let i = 0; i < 75; i++) await w.sample(300 * MB + 2.5 * MB * i);
  t.equal(w.warnings.length, 1, 'warned at 18 min ahead (the horizon stretched by 40 % stall)');
  t.match(w.warnings[0], { pressureSome10: 40 });
  t.same(w.projectedLines(), ['Memory projected to reach the R15 limit in ~18 min']);
  await w.d.stop(1000);
});
