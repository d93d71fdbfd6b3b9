// Heroku's daily cycling through the dyno owner (cycling-hook.ts), over the fake driver on fake
// time: the period passes when the test steps the clock, never in real time.
import t from 'tap';
import { dynoSetup, dynoSpec, workerSpec } from '../../../helpers/fake-dyno.js';

const cycling = (periodMs: number, jitterMs = 0) => ({ cycling: { periodMs, jitterMs, graceMs: 500, random: () => 0.5 } });

t.test('daily cycling: after the period an up dyno is stopped with SIGTERM and started afresh; no crash is reported', async (t) => {
  const s = dynoSetup(t);
  const d = s.make(dynoSpec(), cycling(150));
  d.begin();
  await s.until('up');
  for (const n of [2, 3]) {
    t.same(s.clock.pending, [150], 'the cycle waits for the period');
    t.equal(await s.clock.runNext(), 150);
    await s.until('up', n);
  }
  t.same(s.states().slice(0, 6), ['starting', 'up', 'starting', 'up', 'starting', 'up']);
  t.notOk(s.states().includes('crashed'), 'a cycle is not a crash');
  t.same(s.driver.signals.slice(0, 2), ['SIGTERM', 'SIGTERM'], 'each cycle stops the old container gracefully');
  t.same(s.driver.destroyed.slice(0, 2), ['app1-web-1-abc', 'app1-web-1-abc'], 'and removes it before the new one starts');
  t.ok(s.driver.started.length >= 3);
  t.equal(s.events[2]!.status.endpoint, undefined, 'the route is dropped while it cycles');
  t.equal(d.crashCount, 0);
  await d.stop(500);
  t.same(s.clock.pending, [], 'a stopped dyno has no cycle waiting');
  const n = s.driver.started.length;
  s.clock.tick(300);
  await s.settle();
  t.equal(s.driver.started.length, n, 'a stopped dyno is not cycled again');
});

t.test('the cycle comes after the period plus the random part of the jitter', async (t) => {
  const s = dynoSetup(t);
  const d = s.make(workerSpec(), cycling(1_000, 600));
  d.begin();
  await s.until('up');
  t.same(s.clock.pending, [1_300], 'random 0.5 of a 600 ms jitter');
  s.clock.tick(1_299);
  await s.settle();
  t.same(s.states(), ['starting', 'up'], 'not a millisecond early');
  s.clock.tick(1);
  await s.until('up', 2);
  await d.stop(500);
});

t.test('without cycling configured (the off switch) an up dyno stays as it is', async (t) => {
  const s = dynoSetup(t);
  const d = s.make(dynoSpec());
  d.begin();
  await s.until('up');
  t.same(s.clock.pending, []);
  s.clock.tick(48 * 3_600_000);
  await s.settle();
  t.same(s.states(), ['starting', 'up']);
  await d.stop(500);
});

t.test('a dyno re-adopted as up gets its cycling timer, and is cycled like any other', async (t) => {
  const s = dynoSetup(t);
  const d = s.make(workerSpec(), cycling(1_000));
  await d.adopt(await s.driver.found(d.id), { spec: d.spec });
  t.same(s.events.map((e) => [e.from, e.status.state]), [[null, 'up']]);
  t.same(s.clock.pending, [1_000], 'entering up by re-adoption arms the cycle');
  await s.clock.runNext();
  await s.until('up', 2);
  t.same(s.states(), ['up', 'starting', 'up']);
  t.same(s.driver.signals, ['SIGTERM'], 'the re-adopted container was stopped gracefully');
  t.same(s.driver.destroyed, [d.id]);
  t.equal(s.driver.started.length, 1, 'and replaced by one fresh container');
  await d.stop(500);
});

t.test('one-off dynos are never cycled', async (t) => {
  const s = dynoSetup(t);
  const d = s.make(dynoSpec({ type: 'run', name: 'run.1', id: 'app1-run-1-abc' }), cycling(150));
  d.begin();
  await s.until('up');
  t.same(s.clock.pending, []);
  await d.stop(500);
});
