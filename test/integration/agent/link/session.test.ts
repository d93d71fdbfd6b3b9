// The agent's session against a real ws server playing the coordinator: what the upgrade
// carries, and when the reconnect backoff resets.
import t from 'tap';
import { playCoordinator, startSession, TOKEN, until } from './fixtures/link.js';

t.test('the upgrade carries the bearer token and offers no per-message deflate', async (t) => {
  const c = await playCoordinator(t, () => undefined);
  const { session } = startSession(t, c.url);
  const link = await until('the link', () => c.links[0]);
  await until('ready', () => session.status().state === 'ready');
  t.equal(link.headers.authorization, `Bearer ${TOKEN}`);
  t.equal(link.headers['sec-websocket-extensions'], undefined, 'no permessage-deflate offered');
  t.equal(link.messages[0]?.type, 'hello', 'the first frame is the hello');
});

t.test('the backoff keeps growing across links that die young, and resets after a healthy one', async (t) => {
  let lifetimeMs = 0;
  const c = await playCoordinator(t, (link) => { setTimeout(() => link.ws.close(1011, 'test'), lifetimeMs); });
  // Initial 100 ms (delays 50-100, 75-150, 113-225, ...); a link counts as healthy after 300 ms.
  const { session } = startSession(t, c.url, { reconnectInitialMs: 100, healthyAfterMs: 300 });
  await until('three short-lived links', () => session.status().reconnects >= 3, 10_000);
  const grown = session.status().lastClose!.delayMs;
  t.ok(grown >= 113, `after three links that died at once, the next delay is ${grown} ms (third step: at least 113)`);
  lifetimeMs = 400;
  const before = session.status().reconnects;
  await until('a link that lived past the healthy mark to close', () => session.status().reconnects > before, 10_000);
  const reset = session.status().lastClose!.delayMs;
  t.ok(reset <= 100, `after a healthy link the delay starts again near the initial 100 ms: ${reset} ms`);
});

// How long a link lived is measured on the monotonic clock: an NTP step (chrony's `makestep`
// at boot) while a link is up must neither make a link that died young count as healthy (the
// fleet would redial a failing coordinator at the initial delay) nor a healthy one as young.
// The injected clock's wall time steps right after each welcome; its monotonic time is real.
function steppingClock() {
  const c = { wallStepMs: 0, now: () => Date.now() + c.wallStepMs, monotonic: () => performance.now() };
  return c;
}

t.test('a wall clock step of +1 h while links die young: the backoff keeps growing', async (t) => {
  const c = await playCoordinator(t, (link) => { link.ws.close(1011, 'test'); });
  const clock = steppingClock();
  const { session } = startSession(t, c.url, { reconnectInitialMs: 100, healthyAfterMs: 300, clock, onWelcome: () => { clock.wallStepMs += 3_600_000; } });
  await until('three short-lived links', () => session.status().reconnects >= 3, 10_000);
  t.ok(clock.wallStepMs >= 3 * 3_600_000, 'the wall clock stepped an hour during each link');
  const grown = session.status().lastClose!.delayMs;
  t.ok(grown >= 113, `each link lived about 0 ms: the next delay is ${grown} ms (third step: at least 113), not reset`);
});

t.test('a wall clock step of -1 h during a healthy link: the backoff resets', async (t) => {
  let lifetimeMs = 0;
  const c = await playCoordinator(t, (link) => { setTimeout(() => link.ws.close(1011, 'test'), lifetimeMs); });
  const clock = steppingClock();
  const { session } = startSession(t, c.url, { reconnectInitialMs: 100, healthyAfterMs: 300, clock });
  await until('three short-lived links', () => session.status().reconnects >= 3, 10_000);
  t.ok(session.status().lastClose!.delayMs >= 113, 'the backoff has grown');
  lifetimeMs = 400;
  const before = session.status().reconnects;
  await until('the next link to be ready', () => session.status().reconnects === before && session.status().state === 'ready' ? true : undefined, 10_000);
  clock.wallStepMs -= 3_600_000;
  await until('the link that lived 400 ms to close', () => session.status().reconnects > before, 10_000);
  const reset = session.status().lastClose!.delayMs;
  t.ok(reset <= 100, `the link lived 400 ms (healthy after 300), though the wall clock went back an hour: the delay starts again near 100 ms (${reset} ms)`);
});
