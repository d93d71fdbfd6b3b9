// The dyno manager's admission and drain, over the fake driver (real runtimes: test/integration).
import t from 'tap';
import { managerSetup, MB, spec } from '../../../helpers/fake-manager.js';

t.test('admission: a dyno that does not fit allocatable memory is refused and nothing starts', async (t) => {
  const s = managerSetup(t, 1536);
  s.manager.start(spec(1));
  s.manager.start(spec(2));
  t.equal(s.manager.committedBytes(), 1024 * MB);
  t.throws(() => s.manager.start(spec(3, 1024)), { code: 'INSUFFICIENT_CAPACITY', message: /needs 1024 MB, host has 512 MB free/ });
  await s.until('app-worker-2', 'up');
  t.equal(s.driver.started.length, 2, 'the refused dyno never reached the runtime');
  t.equal(s.manager.list().length, 2);
  s.manager.start(spec(3, 512));
  t.equal(s.manager.committedBytes(), 1536 * MB, 'one that fits is admitted');
  await s.manager.stopAll();
});

t.test('drain refuses new dynos and keeps the running ones; undrain accepts again', async (t) => {
  const s = managerSetup(t);
  s.manager.start(spec(1));
  await s.until('app-worker-1', 'up');
  t.same(s.manager.drain(), { accepting: false, stopping: 0 });
  t.equal(s.manager.accepting, false);
  t.throws(() => s.manager.start(spec(2)), { code: 'HOST_DRAINING' });
  t.same(s.manager.list().map((d) => d.state), ['up'], 'the running dyno keeps running');
  t.same(s.manager.drain(), { accepting: false, stopping: 0 }, 'draining twice is the same');
  t.same(s.manager.undrain(), { accepting: true, stopping: 0 });
  s.manager.start(spec(2));
  await s.until('app-worker-2', 'up');
  await s.manager.stopAll();
});

t.test('drain with stopDynos stops every dyno Heroku style (stopping, SIGTERM, down)', async (t) => {
  const s = managerSetup(t);
  for (const n of [1, 2, 3]) s.manager.start(spec(n));
  for (const n of [1, 2, 3]) await s.until(`app-worker-${n}`, 'up');
  t.same(s.manager.drain({ stopDynos: true, graceMs: 200 }), { accepting: false, stopping: 3 });
  for (const n of [1, 2, 3]) await s.until(`app-worker-${n}`, 'down');
  t.same(s.driver.signals, ['SIGTERM', 'SIGTERM', 'SIGTERM']);
  t.same(s.manager.list(), [], 'a down dyno is forgotten');
  t.equal(s.manager.committedBytes(), 0);
  const order = s.events.filter((e) => e.id === 'app-worker-1').map((e) => e.state);
  t.same(order, ['starting', 'up', 'stopping', 'down']);
});

t.test('a listener that throws on `crashed` neither stops the crash restart nor the other listeners', async (t) => {
  const s = managerSetup(t);
  const later: string[] = [];
  s.manager.onTransition((_from, status) => { if (status.state === 'crashed') throw new Error('listener bug'); });
  s.manager.onTransition((_from, status) => { later.push(status.state); });
  s.manager.start(spec(1));
  await s.until('app-worker-1', 'up');
  s.driver.exit('app-worker-1', { code: 1, signal: null, oomKilled: false });
  await s.until('app-worker-1', 'crashed');
  await s.until('app-worker-1', 'starting');
  await eventually(() => s.events.filter((e) => e.state === 'up').length === 2);
  t.same(s.events.map((e) => e.state), ['starting', 'up', 'crashed', 'starting', 'up'], 'restarted as if nothing had thrown');
  t.same(later, ['starting', 'up', 'crashed', 'starting', 'up'], 'a listener after the one that threw heard every change');
  t.equal(s.driver.started.length, 2);
  await s.manager.stopAll();
});

async function eventually(ok: () => boolean): Promise<void> {
  const end = Date.now() + 5_000;
  while (!ok()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}
