// The owner of the exit records: the last EXITS_KEPT of each dyno, kept a while after the
// dyno is gone, bounded in total; and the summary that rides in the `crashed` event.
import t from 'tap';
import { EXITS_KEPT, ExitRecords, SUMMARY_LINES, exitSummary, type ExitRecord } from '../../../../agent/dynos/exit-records.js';
import { Value } from '@sinclair/typebox/value';
import { ExitSummary } from '../../../../shared/protocol.js';

let at = Date.parse('2026-12-02T10:00:00Z');
function record(dynoId: string, n: number, over: Partial<ExitRecord> = {}): ExitRecord {
  at += 1000;
  return {
    dynoId, dyno: dynoId.replace(/^app-/, '').replace('-', '.'), app: 'app', release: 'v3', incarnation: n, adopted: false,
    at: new Date(at).toISOString(), cause: 'crashed', code: 3, signal: null, reason: { code: 'DYNO_CRASHED', message: 'Process exited with status 3' },
    oomKilled: false, quotaBytes: 512 * 1024 * 1024, peakMemoryBytes: 1000, throttledPeriods: 0, restartCount: n - 1, bindMs: null, ranMs: 100,
    lines: [`line of run ${n}`], ...over,
  };
}

function monotonic() {
  let now = 0;
  return { monotonic: () => now, step: (ms: number) => { now += ms; } };
}

t.test('the last EXITS_KEPT exits of each dyno, oldest first', async (t) => {
  const r = new ExitRecords();
  for (let n = 1; n <= 8; n++) r.add(record('app-web-1', n));
  r.add(record('app-web-2', 1));
  t.equal(EXITS_KEPT, 5);
  t.same(r.list('app-web-1')!.map((x) => x.incarnation), [4, 5, 6, 7, 8]);
  t.same(r.list('web.2')!.map((x) => x.dynoId), ['app-web-2'], 'found by name too');
  t.equal(r.list('web.9'), undefined, 'a dyno with no record: undefined');
});

t.test('a dyno that is gone keeps its records for a while, then they go', async (t) => {
  const clock = monotonic();
  const r = new ExitRecords({ clock, goneKeptMs: 60_000 });
  r.add(record('app-web-1', 1));
  r.gone('app-web-1');
  clock.step(59_000);
  t.equal(r.list('app-web-1')?.length, 1, 'still there for the person on call');
  clock.step(1_000);
  t.equal(r.list('app-web-1'), undefined, 'dropped after the retention');
  t.same(r.size, { dynos: 0, records: 0, bytes: 0 });
});

t.test('a new exit of a dyno of the same id (restarted elsewhere, back) makes it live again', async (t) => {
  const clock = monotonic();
  const r = new ExitRecords({ clock, goneKeptMs: 60_000 });
  r.add(record('app-web-1', 1));
  r.gone('app-web-1');
  clock.step(30_000);
  r.add(record('app-web-1', 1));
  clock.step(60_000);
  t.equal(r.list('app-web-1')?.length, 2, 'a live dyno is not aged out');
});

t.test('at most maxGone dynos that are gone, the longest gone dropped first', async (t) => {
  const clock = monotonic();
  const r = new ExitRecords({ clock, maxGone: 3 });
  for (let i = 1; i <= 5; i++) {
    r.add(record(`app-w-${i}`, 1));
    r.gone(`app-w-${i}`);
    clock.step(1);
  }
  t.same([1, 2, 3, 4, 5].map((i) => r.list(`app-w-${i}`) !== undefined), [false, false, true, true, true]);
});

t.test('bounded in total bytes: the oldest records of any dyno go first', async (t) => {
  const r = new ExitRecords({ budgetBytes: 10_000 });
  const long = 'x'.repeat(1_000);
  for (let n = 1; n <= 20; n++) r.add(record(`app-w-${n % 4}`, n, { lines: [long, long] }));
  t.ok(r.size.bytes <= 10_000, `${r.size.bytes} bytes held`);
  t.ok(r.size.records >= 3 && r.size.records < 20, `${r.size.records} records held`);
  const newest = r.list('app-w-0')!.at(-1)!;
  t.equal(newest.incarnation, 20, 'the newest record is kept');
});

t.test('the summary is small: the last 10 lines, each cut to 200 characters; it fits the protocol', async (t) => {
  const lines = Array.from({ length: 50 }, (_, i) => `${i}: ${'y'.repeat(500)}`);
  const s = exitSummary(record('app-web-1', 3, { lines, bindMs: 812, oomKilled: true, code: 137, signal: 'SIGKILL' }));
  t.equal(s.lines.length, SUMMARY_LINES);
  t.match(s.lines[0], /^40: y+…$/);
  t.ok(s.lines.every((l) => l.length <= 200));
  t.match(s, { code: 137, signal: 'SIGKILL', oomKilled: true, peakMemoryBytes: 1000, throttledPeriods: 0, restartCount: 2, bindMs: 812 });
  t.ok(Value.Check(ExitSummary, s), 'valid against the schema');
  t.ok(JSON.stringify(s).length < 3_000, `${JSON.stringify(s).length} bytes in the event`);
});
