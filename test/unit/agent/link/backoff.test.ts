import t from 'tap';
import { Backoff, RECONNECT_MAX_MS } from '../../../../agent/link/backoff.js';

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

t.test('a time the coordinator named is the next delay, and later ones back off from it', async (t) => {
  const b = new Backoff(250, RECONNECT_MAX_MS, () => 1);
  b.next();
  t.equal(b.startFrom(7_000), 7_000);
  t.equal(b.next(), 10_500, 'the next failure backs off from the named time, not from 250 ms');
  t.equal(b.startFrom(10), 250, 'never below the initial delay');
  t.equal(b.startFrom(10 * RECONNECT_MAX_MS), RECONNECT_MAX_MS, 'never above the cap');
  b.reset();
  t.equal(b.next(), 250, 'reset forgets the named time');
});

t.test('spread picks the first redial uniformly within the hint', async (t) => {
  const draws = [0.5, 0.0, 0.999];
  const b = new Backoff(250, RECONNECT_MAX_MS, () => draws.shift() ?? 1);
  t.equal(b.spread(20_000), 10_000);
  t.equal(b.spread(20_000), 250, 'a draw of 0 still waits the initial delay');
  t.equal(b.spread(20_000), 19_980);
});

t.test('after a spread or named attempt fails, retries land in the second half of the window', async (t) => {
  const b = new Backoff(250, RECONNECT_MAX_MS, () => 0);
  t.equal(b.spread(20_000), 250);
  t.equal(b.next(), 10_000, 'not 250 x 1.5: at least half the window');
  t.equal(b.startFrom(400, 8_000), 400);
  t.equal(b.next(), 4_000);
  b.reset();
  t.equal(b.next(), 125, 'reset drops the window (equal jitter of 250 with a draw of 0)');
});
