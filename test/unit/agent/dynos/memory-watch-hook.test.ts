// Heroku's R14/R15 through the dyno owner (memory-watch-hook.ts), with samples the fake driver
// makes up; the R14 rate limit runs on fake time.
import t from 'tap';
import { dynoSetup, dynoSpec, MB, workerSpec } from '../../../helpers/fake-dyno.js';

t.test('memory: the runtime limit is 2x the quota; R14 over the quota is a rate-limited warning; R15 at 2x kills and restarts', async (t) => {
  const s = dynoSetup(t);
  const d = s.make(workerSpec(), { memory: { r15Multiple: 2, r14IntervalMs: 60_000 } });
  d.begin();
  await s.until('up');
  t.equal(s.driver.started[0]!.limits.memoryBytes, 1024 * MB, 'a 512 MB dyno may burst to 1 GB before the kernel steps in');

  s.driver.memory = { workingSetBytes: 300 * MB, swapBytes: 0 };
  await d.sampleMemory();
  t.match(d.memory(), { quotaBytes: 512 * MB, limitBytes: 1024 * MB, workingSetBytes: 300 * MB, r14Count: 0 });

  s.driver.memory = { workingSetBytes: 600 * MB, swapBytes: 10 * MB };
  await d.sampleMemory();
  await d.sampleMemory();
  t.equal(d.memory()!.r14Count, 1, 'R14 once: the second sample is within the rate limit');
  s.clock.tick(59_999);
  await d.sampleMemory();
  t.equal(d.memory()!.r14Count, 1, 'still within the rate limit a millisecond before it ends');
  s.clock.tick(1);
  await d.sampleMemory();
  t.equal(d.memory()!.r14Count, 2, 'R14 again once the interval has passed');
  t.equal(d.current, 'up', 'R14 is a warning: the dyno keeps running');
  t.same(s.driver.signals, []);

  s.driver.memory = { workingSetBytes: 1024 * MB, swapBytes: 0 };
  await d.sampleMemory();
  const crashed = await s.until('crashed');
  t.match(crashed.reason, { code: 'DYNO_MEMORY_EXCEEDED', message: /R15 \(Memory quota vastly exceeded\): 1024 MB of 512 MB/ });
  t.same(s.driver.signals, ['SIGKILL']);
  await s.clock.runNext();
  await s.until('up', 2);
  t.equal(d.memory(), undefined, 'the restarted dyno has not been sampled yet');
  t.equal(s.events.filter((e) => e.status.state === 'starting')[1]!.status.reason, undefined);
  await d.stop(1000);
});

t.test('R14 and R15 are lines in the dyno log stream, each once', async (t) => {
  const s = dynoSetup(t);
  const lines: string[] = [];
  const logs = { async attach() {}, system: (_d: unknown, text: string) => { lines.push(text); }, async flush() {}, async detach() {} };
  const d = s.make(workerSpec(), { logs });
  d.begin();
  await s.until('up');
  s.driver.memory = { workingSetBytes: 700 * MB, swapBytes: 0 };
  await d.sampleMemory();
  s.driver.memory = { workingSetBytes: 1100 * MB, swapBytes: 0 };
  await d.sampleMemory();
  await d.sampleMemory();
  await s.until('crashed');
  t.same(lines.filter((l) => /^Error R1[45]/.test(l)), ['Error R14 (Memory quota exceeded): 700 MB of 512 MB', 'Error R15 (Memory quota vastly exceeded): 1100 MB of 512 MB']);
  t.same(s.driver.signals, ['SIGKILL'], 'killed once');
  await d.stop(1000);
});

t.test('a dyno that is not running is not sampled', async (t) => {
  const s = dynoSetup(t);
  s.driver.memory = { workingSetBytes: 10_000 * MB, swapBytes: 0 };
  const d = s.make(dynoSpec({ type: 'run', name: 'run.1', id: 'app1-run-1-abc' }));
  await d.sampleMemory();
  t.equal(d.memory(), undefined, 'before launch');
  d.begin();
  await s.until('up');
  s.driver.exit('app1-run-1-abc', { code: 0, signal: null, oomKilled: false });
  await s.until('crashed');
  await d.sampleMemory();
  t.same(s.driver.signals, [], 'a crashed dyno is never R15-killed');
});

// The R14 rate limit is an interval on the monotonic clock: a wall clock step (chrony's
// `makestep`) neither lets a second warning out at once nor holds the next one back an hour.
t.test('R14 rate limit across a wall clock step of +1 h: no second warning before the interval has passed', async (t) => {
  const s = dynoSetup(t);
  const d = s.make(workerSpec(), { memory: { r15Multiple: 2, r14IntervalMs: 60_000 } });
  d.begin();
  await s.until('up');
  s.driver.memory = { workingSetBytes: 600 * MB, swapBytes: 0 };
  await d.sampleMemory();
  t.equal(d.memory()!.r14Count, 1);
  s.clock.stepWall(3_600_000);
  await d.sampleMemory();
  t.equal(d.memory()!.r14Count, 1, 'the wall clock jumped an hour, but only 0 ms passed');
  s.clock.tick(59_999);
  await d.sampleMemory();
  t.equal(d.memory()!.r14Count, 1, 'still within the rate limit a millisecond before it ends');
  s.clock.tick(1);
  await d.sampleMemory();
  t.equal(d.memory()!.r14Count, 2, 'R14 again at the interval');
  await d.stop(1000);
});

t.test('R14 rate limit across a wall clock step of -1 h: the next warning comes at the interval, not an hour later', async (t) => {
  const s = dynoSetup(t);
  const d = s.make(workerSpec(), { memory: { r15Multiple: 2, r14IntervalMs: 60_000 } });
  d.begin();
  await s.until('up');
  s.driver.memory = { workingSetBytes: 600 * MB, swapBytes: 0 };
  await d.sampleMemory();
  t.equal(d.memory()!.r14Count, 1);
  s.clock.tick(30_000);
  s.clock.stepWall(-3_600_000);
  s.clock.tick(29_999);
  await d.sampleMemory();
  t.equal(d.memory()!.r14Count, 1, 'within the rate limit');
  s.clock.tick(1);
  await d.sampleMemory();
  t.equal(d.memory()!.r14Count, 2, 'R14 again 60 s after the first, though the wall clock went back an hour');
  t.equal(d.memory()!.sampledAt, new Date(s.clock.now()).toISOString(), 'the sample is stamped with wall time (it is shown to people)');
  await d.stop(1000);
});
