// Heroku's R10 through the dyno owner (boot-deadline-hook.ts): the readiness probe connects
// for real (nothing listens), the boot timeout passes on fake time.
import t from 'tap';
import { dynoSetup, dynoSpec } from '../../../helpers/fake-dyno.js';

t.test('R10: a web dyno that never binds $PORT is killed at the boot timeout and reported crashed', async (t) => {
  const s = dynoSetup(t, { bootTimeoutMs: 300 });
  s.driver.listen = false;
  const d = s.make(dynoSpec());
  d.begin();
  await s.clock.next((ms) => ms === 300);
  s.clock.tick(299);
  await s.settle();
  t.same(s.driver.signals, [], 'not before the deadline');
  t.equal(d.current, 'starting');
  s.clock.tick(1);
  const crashed = await s.until('crashed');
  t.match(crashed.reason, { code: 'DYNO_BOOT_TIMEOUT', message: /R10/ });
  t.same(s.driver.signals.slice(0, 1), ['SIGKILL']);
  t.same(s.states().slice(0, 2), ['starting', 'crashed']);
  await d.stop(1000);
});

t.test('a web dyno that binds $PORT in time is up, and the deadline is dropped', async (t) => {
  const s = dynoSetup(t, { bootTimeoutMs: 300 });
  s.driver.listen = false;
  const d = s.make(dynoSpec());
  d.begin();
  await s.clock.next((ms) => ms === 300);
  const port = Number(s.driver.started[0]!.env.find((e) => e.startsWith('PORT='))!.slice(5));
  await s.clock.next((ms) => ms === 100);
  t.equal(d.current, 'starting', 'the first probe found nothing');
  await s.driver.listenOn(port);
  s.clock.tick(100);
  const up = await s.until('up');
  t.same(up.endpoint, { host: '127.0.0.1', port });
  t.same(s.clock.pending, [], 'no deadline left');
  t.same(s.driver.signals, []);
  await d.stop(1000);
});

t.test('a web dyno re-adopted while its port does not accept is starting, with the whole boot timeout from then', async (t) => {
  const s = dynoSetup(t, { bootTimeoutMs: 60_000 });
  s.driver.listen = false;
  const d = s.make(dynoSpec());
  const port = await s.ports.reserve();
  s.ports.release(port);
  await d.adopt(await s.driver.found(d.id, { port }), { spec: d.spec, port });
  t.same(s.events.map((e) => [e.from, e.status.state]), [[null, 'starting']]);
  await s.clock.next((ms) => ms === 60_000);
  s.clock.tick(60_000);
  const crashed = await s.until('crashed');
  t.match(crashed.reason, { code: 'DYNO_BOOT_TIMEOUT' });
  t.same(s.driver.signals, ['SIGKILL']);
  await d.stop(1000);
});

for (const stepMs of [3_600_000, -3_600_000]) {
  t.test(`R10 fires at its bound when the wall clock steps ${stepMs > 0 ? '+' : '-'}1 h mid-wait (NTP at boot): not at once, not an hour late`, async (t) => {
    const s = dynoSetup(t, { bootTimeoutMs: 300 });
    s.driver.listen = false;
    const d = s.make(dynoSpec());
    d.begin();
    await s.clock.next((ms) => ms === 300);
    s.clock.tick(100);
    s.clock.stepWall(stepMs);
    s.clock.tick(199);
    await s.settle();
    t.same(s.driver.signals, [], 'not killed early: 299 ms of the 300 have passed');
    t.equal(d.current, 'starting');
    s.clock.tick(1);
    const crashed = await s.until('crashed');
    t.match(crashed.reason, { code: 'DYNO_BOOT_TIMEOUT', message: /R10/ });
    t.same(s.driver.signals.slice(0, 1), ['SIGKILL'], 'killed at 300 ms, not an hour off');
    await d.stop(1000);
  });
}
