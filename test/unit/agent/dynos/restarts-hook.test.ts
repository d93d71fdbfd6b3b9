// Crash restarts through the dyno owner (restarts-hook.ts, with the policy of
// restart-policy.ts), over the fake driver on fake time: each delay is the time the clock was
// stepped by between the `crashed` report and the next `starting`, so it is exact.
import t from 'tap';
import type { RestartPolicyOptions } from '../../../../agent/dynos/restart-policy.js';
import { dynoSetup, dynoSpec, workerSpec } from '../../../helpers/fake-dyno.js';

const policy = (baseMs: number, capMs: number): { restartPolicy: RestartPolicyOptions } => ({ restartPolicy: { baseMs, capMs, stableAfterMs: 60_000, jitter: 0 } });

t.test('an unexpected exit is a crash with the exit status, then at once a restart in a fresh container', async (t) => {
  const s = dynoSetup(t);
  const d = s.make(dynoSpec());
  d.begin();
  await s.until('up');
  s.driver.exit('app1-web-1-abc', { code: 1, signal: null, oomKilled: false });
  const crashed = await s.until('crashed');
  t.same(crashed.exit, { code: 1, signal: null });
  t.match(crashed.reason, { code: 'DYNO_CRASHED' });
  t.equal(crashed.endpoint, undefined, 'a crashed dyno has no endpoint');
  t.ok(d.restartPending, 'crashed, waiting for the restart');
  t.equal(await s.clock.runNext(), 0, 'the first restart is at once');
  const again = await s.until('up', 2);
  t.same(s.states(), ['starting', 'up', 'crashed', 'starting', 'up']);
  t.same(s.driver.destroyed, ['app1-web-1-abc'], 'the crashed container was removed before the new one started');
  t.equal(s.driver.started.length, 2);
  t.equal(s.events[3]!.status.exit, undefined, 'the new start carries no stale exit status');
  t.equal(s.events[3]!.status.reason, undefined);
  t.ok(again.endpoint, 'up again with an endpoint');
  t.equal(s.ports.inUse, 1, 'one port: the first went back to the pool');
  t.same([...s.slugs.pins], ['app1-web-1-abc'], 'the slug stayed pinned across the restart');
  t.equal(d.crashCount, 1);
  await d.stop(1000);
  t.same(s.states().slice(-2), ['stopping', 'down']);
  t.same([...s.slugs.pins], [], 'down: the slug is unpinned');
  t.equal(s.ports.inUse, 0);
});

t.test('a crash loop backs off: at once, then base, 2x base, capped', async (t) => {
  const s = dynoSetup(t);
  const d = s.make(workerSpec(), policy(400, 800));
  d.begin();
  const gaps: number[] = [];
  for (let n = 1; n <= 4; n++) {
    await s.until('up', n);
    s.driver.exit('app1-worker-1-abc', { code: 1, signal: null, oomKilled: false });
    await s.until('crashed', n);
    await s.clock.runNext();
    await s.until('starting', n + 1);
    const crashedAt = s.events.filter((e) => e.status.state === 'crashed')[n - 1]!.at;
    gaps.push(s.events.filter((e) => e.status.state === 'starting')[n]!.at - crashedAt);
  }
  t.equal(gaps[0], 0, 'first restart at once');
  for (const [i, want] of [[1, 400], [2, 800], [3, 800]] as const) t.equal(gaps[i], want, `restart ${i + 1} after ${want} ms`);
  t.equal(d.crashCount, 4);
  await d.stop(1000);
});

t.test('a restart waits its whole delay: not a millisecond early', async (t) => {
  const s = dynoSetup(t);
  const d = s.make(workerSpec(), policy(400, 800));
  d.begin();
  for (let n = 1; n <= 2; n++) {
    await s.until('up', n);
    s.driver.exit('app1-worker-1-abc', { code: 1, signal: null, oomKilled: false });
    await s.until('crashed', n);
    if (n === 1) await s.clock.runNext();
  }
  s.clock.tick(399);
  await s.settle();
  t.equal(d.current, 'crashed', 'still waiting at 399 ms');
  t.equal(s.driver.started.length, 2);
  s.clock.tick(1);
  await s.until('up', 3);
  t.equal(s.driver.started.length, 3);
  await d.stop(1000);
});

t.test('stop while a crashed dyno waits for its restart: down, and nothing starts later', async (t) => {
  const s = dynoSetup(t);
  const d = s.make(workerSpec(), policy(200, 200));
  d.begin();
  await s.until('up');
  s.driver.exit('app1-worker-1-abc', { code: 1, signal: null, oomKilled: false });
  await s.until('crashed');
  await s.clock.runNext();
  await s.until('up', 2);
  s.driver.exit('app1-worker-1-abc', { code: 1, signal: null, oomKilled: false });
  await s.until('crashed', 2);
  t.ok(d.restartPending, 'waiting 200 ms before the next start');
  t.same(s.clock.pending, [200]);
  await d.stop(1000);
  s.clock.tick(350);
  await s.settle();
  t.same(s.states(), ['starting', 'up', 'crashed', 'starting', 'up', 'crashed', 'down']);
  t.equal(s.driver.started.length, 2, 'no third container');
  t.notOk(d.restartPending);
  t.same([...s.slugs.pins], []);
});

t.test('a one-off dyno (run.1) is never restarted; its exit code is reported', async (t) => {
  const s = dynoSetup(t);
  const d = s.make(dynoSpec({ type: 'run', name: 'run.1', id: 'app1-run-1-abc' }));
  d.begin();
  await s.until('up');
  s.driver.exit('app1-run-1-abc', { code: 3, signal: null, oomKilled: false });
  const crashed = await s.until('crashed');
  t.same(crashed.exit, { code: 3, signal: null });
  t.same(s.clock.pending, [], 'no restart waiting');
  s.clock.tick(3_600_000);
  await s.settle();
  t.same(s.states(), ['starting', 'up', 'crashed']);
  t.equal(s.driver.started.length, 1);
  t.notOk(d.restartPending);
  t.same([...s.slugs.pins], [], 'no restart coming: the slug is unpinned');
  await d.stop(1000);
  t.same(s.states(), ['starting', 'up', 'crashed', 'down'], 'stopping a crashed dyno just forgets it');
});

t.test('a re-adopted dyno that exited while no agent ran is reported crashed on its exit and restarted', async (t) => {
  const s = dynoSetup(t);
  const d = s.make(workerSpec());
  const found = await s.driver.found(d.id, { exited: { code: 2, signal: null, oomKilled: false } });
  await d.adopt(found, { spec: d.spec });
  const crashed = await s.until('crashed');
  t.same(crashed.exit, { code: 2, signal: null });
  t.equal(await s.clock.runNext(), 0, 'restarted at once');
  await s.until('up', 2);
  t.same(s.events.map((e) => [e.from, e.status.state]), [[null, 'up'], ['up', 'crashed'], ['crashed', 'starting'], ['starting', 'up']]);
  t.same(s.driver.destroyed, [d.id], 'the exited container was removed first');
  await d.stop(1000);
});

// Stability is measured on the monotonic clock: chrony's `makestep` at boot steps the wall
// clock by up to hours just when dynos start, and must not decide whether a run was healthy.
t.test('a wall clock step of +1 h does not make a short run count as healthy: the crash loop keeps backing off', async (t) => {
  const s = dynoSetup(t);
  const d = s.make(workerSpec(), policy(400, 800));
  d.begin();
  await s.until('up');
  s.driver.exit('app1-worker-1-abc', { code: 1, signal: null, oomKilled: false });
  await s.until('crashed');
  t.equal(await s.clock.runNext(), 0, 'the first restart is at once');
  await s.until('up', 2);
  s.clock.stepWall(3_600_000);
  s.clock.tick(10);
  s.driver.exit('app1-worker-1-abc', { code: 1, signal: null, oomKilled: false });
  await s.until('crashed', 2);
  t.equal(await s.clock.next(), 400, 'up for 10 ms, crashed again: the second crash in a row waits the base delay');
  t.equal(d.crashCount, 2, 'the count was not reset');
  await d.stop(1000);
});

t.test('a wall clock step of -1 h does not make a healthy run look short: the next crash restarts at once', async (t) => {
  const s = dynoSetup(t);
  const d = s.make(workerSpec(), policy(400, 800));
  d.begin();
  await s.until('up');
  s.driver.exit('app1-worker-1-abc', { code: 1, signal: null, oomKilled: false });
  await s.until('crashed');
  await s.clock.runNext();
  await s.until('up', 2);
  s.clock.tick(60_000);
  s.clock.stepWall(-3_600_000);
  s.driver.exit('app1-worker-1-abc', { code: 1, signal: null, oomKilled: false });
  await s.until('crashed', 2);
  t.equal(await s.clock.next(), 0, 'up for the whole stableAfterMs (60 s): a first crash again, restarted at once');
  t.equal(d.crashCount, 1, 'the count was reset');
  await d.stop(1000);
});
