import t from 'tap';
import { Backoff, RECONNECT_MAX_MS } from '../../../agent/coordinator/backoff.js';

t.test('starts near 250 ms and grows by 1.5x', async (t) => {
  const b = new Backoff(250, RECONNECT_MAX_MS, () => 1);
  t.same([b.next(), b.next(), b.next()], [250, 375, 563]);
});

t.test('jitter keeps at least half the delay', async (t) => {
  const b = new Backoff(1000, RECONNECT_MAX_MS, () => 0);
  t.equal(b.next(), 500);
});

t.test('caps near 2 minutes and resets', async (t) => {
  const b = new Backoff(250, RECONNECT_MAX_MS, () => 1);
  let last = 0;
  for (let i = 0; i < 40; i++) last = b.next();
  t.equal(last, RECONNECT_MAX_MS);
  b.reset();
  t.equal(b.next(), 250);
});
