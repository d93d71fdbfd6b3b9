// settle()'s bookkeeping on fake time: released once its changes are applied, rejected with
// ROUTER_UNAVAILABLE (and the last failure) when the bound runs out first.
import t from 'tap';
import { SettleWaiters } from '../../../../coordinator/haproxy/settle.js';
import { SlipwayError } from '../../../../shared/errors.js';
import { FakeClock } from '../../../helpers/fake-clock.js';

t.test('nothing changed: settled at once', async (t) => {
  const w = new SettleWaiters(new FakeClock());
  await w.wait(1_000);
  t.pass();
});

t.test('released once a pass applied every change made before the call', async (t) => {
  const clock = new FakeClock();
  const w = new SettleWaiters(clock);
  w.changed();
  w.changed();
  let done = false;
  const p = w.wait(1_000).then(() => { done = true; });
  w.changed(); // after the call: not waited for
  w.applied(1);
  await Promise.resolve();
  t.notOk(done, 'change 2 is not applied yet');
  w.applied(2);
  await p;
  t.ok(done);
  t.same(clock.delays, [1_000], 'one bounded wait');
});

t.test('the bound: ROUTER_UNAVAILABLE carrying the last failure', async (t) => {
  const clock = new FakeClock();
  const w = new SettleWaiters(clock);
  w.changed();
  const p = w.wait(500);
  w.failed(new SlipwayError('ROUTER_COMMAND_FAILED', 'HAProxy refused "add server x/y": No such backend.'));
  clock.tick(499);
  clock.tick(1);
  await t.rejects(p, { code: 'ROUTER_UNAVAILABLE', message: /within 500 ms: HAProxy refused "add server x\/y"/ });
});

t.test('rejectAll at close', async (t) => {
  const w = new SettleWaiters(new FakeClock());
  w.changed();
  const p = w.wait(500);
  w.rejectAll(new SlipwayError('ROUTER_UNAVAILABLE', 'closed'));
  await t.rejects(p, { code: 'ROUTER_UNAVAILABLE', message: 'closed' });
});
