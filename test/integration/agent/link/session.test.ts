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
