// A half-open link: a TCP proxy between the agent's real session and the SDK's AgentServer
// stops forwarding on an established connection (no FIN, no RST: a blackhole, as when a
// route or a NAT entry vanishes). Both sides must notice within their ping deadline, the
// agent must redial (through the proxy, which forwards new connections), and the dynos'
// host must be welcomed again. Also: a coordinator that closes with 1012 names each agent a
// time to come back, and the agents redial at those times, not all at once.
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { AgentServer } from '../../../../shared/coordinator-sdk/index.js';
import { AGENT_WS_PATH } from '../../../../shared/protocol.js';
import { createRootLogger } from '../../../../shared/log.js';
import { helloFor, startSession, TOKEN, until } from './fixtures/link.js';

const PING_MS = 200;

async function coordinator(t: Test, pingIntervalMs = PING_MS) {
  const lost: { agentId: string; at: number }[] = [];
  const welcomed: { agentId: string; at: number }[] = [];
  const server = new AgentServer({
    token: TOKEN, coordinatorId: 'blackhole-test', log: createRootLogger({ level: 'silent' }), pingIntervalMs,
    app: {
      hello: (agentId) => { welcomed.push({ agentId, at: performance.now() }); return undefined; },
      event: () => undefined, capacity: () => undefined,
      disconnected: (agentId) => void lost.push({ agentId, at: performance.now() }),
    },
  });
  const http = createHttpServer();
  server.attach(http);
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  const port = (http.address() as AddressInfo).port;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await server.close(0);
    http.closeAllConnections();
    await new Promise((r) => http.close(r));
  };
  t.teardown(close);
  return { server, port, lost, welcomed, close };
}

/** Forwards TCP to `port`; blackhole() silently stops forwarding on the connections open now. */
async function proxy(t: Test, port: number) {
  const pairs: [Socket, Socket][] = [];
  const server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
    client.pipe(upstream);
    upstream.pipe(client);
    pairs.push([client, upstream]);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(async () => {
    for (const [a, b] of pairs) { a.destroy(); b.destroy(); }
    await new Promise((r) => server.close(r));
  });
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}${AGENT_WS_PATH}`,
    blackhole() {
      for (const [a, b] of pairs.splice(0)) {
        a.unpipe(b);
        b.unpipe(a);
        a.pause();
        b.pause();
        t.teardown(() => { a.destroy(); b.destroy(); });
      }
    },
  };
}

t.test('a blackholed link is detected on both sides within the ping deadline, and the agent comes back', async (t) => {
  const c = await coordinator(t);
  const p = await proxy(t, c.port);
  // A slow first redial, so that the coordinator's own detection is not pre-empted by the
  // agent's new link replacing the dead one.
  const { session } = startSession(t, p.url, { pingIntervalMs: PING_MS, reconnectInitialMs: 3_000 });
  await until('the welcome', () => session.status().state === 'ready');
  const t0 = performance.now();
  p.blackhole();
  await until('the agent to notice', () => session.status().lastError === 'ping timeout', 5_000);
  const agentMs = performance.now() - t0;
  t.ok(agentMs <= 2 * PING_MS + 300, `the agent noticed in ${agentMs.toFixed(0)} ms (deadline: 2 pings, ${2 * PING_MS} ms)`);
  await until('the coordinator to notice', () => c.lost[0], 5_000);
  const coordMs = c.lost[0]!.at - t0;
  t.ok(coordMs <= 3 * PING_MS + 300, `the coordinator noticed in ${coordMs.toFixed(0)} ms (deadline: 2 missed pongs, ${3 * PING_MS} ms)`);
  await until('the agent to be welcomed again on a new connection', () => c.welcomed.length >= 2 && session.status().state === 'ready', 8_000);
  t.pass('ready again');
});

t.test('a restarting coordinator names each agent its own time to come back', async (t) => {
  const c = await coordinator(t, 60_000);
  const sessions = Array.from({ length: 5 }, (_, i) => startSession(t, `ws://127.0.0.1:${c.port}${AGENT_WS_PATH}`, {
    hello: async () => helloFor(`agent-${i}`),
  }).session);
  await until('all welcomed', () => sessions.every((s) => s.status().state === 'ready'));
  await c.server.close(2_000); // slots 0, 400, 800, 1200, 1600 ms
  const closes = sessions.map((s) => s.status().lastClose);
  t.same(closes.map((x) => x?.code), [1012, 1012, 1012, 1012, 1012], 'closed as service restart');
  t.ok(closes.every((x) => x?.namedByCoordinator), 'each redial time was named by the coordinator');
  t.same(closes.map((x) => x!.delayMs).sort((a, b) => a - b), [50, 400, 800, 1200, 1600], 'one slot each (the first at least the initial backoff, 50 ms here)');
});

t.test('agents welcomed while the fleet was small get a larger spread hint as it grows', async (t) => {
  const server = new AgentServer({
    token: TOKEN, coordinatorId: 'hint-test', log: createRootLogger({ level: 'silent' }), hintCheckMs: 50,
    app: { hello: () => undefined, event: () => undefined, capacity: () => undefined },
  });
  const http = createHttpServer();
  server.attach(http);
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  t.teardown(async () => { await server.close(0); http.closeAllConnections(); await new Promise((r) => http.close(r)); });
  const url = `ws://127.0.0.1:${(http.address() as AddressInfo).port}${AGENT_WS_PATH}`;
  const first = startSession(t, url, { hello: async () => helloFor('agent-first') }).session;
  await until('the first welcome', () => first.status().state === 'ready');
  // Alone, it was told 10 ms; with 20 agents the spread is 200 ms.
  const rest = Array.from({ length: 19 }, (_, i) => startSession(t, url, { hello: async () => helloFor(`agent-${i}`) }).session);
  await until('all welcomed', () => rest.every((s) => s.status().state === 'ready'));
  t.equal(server.spreadMs(), 200);
  // A hint goes out when a link's is under 3/4 of today's value, so the first agent may have
  // been updated while the fleet was still growing (e.g. to 150 ms at 15 agents).
  const held = await until('the first agent to hold a current hint', () => (first.status().spreadMs >= 150 ? first.status().spreadMs : undefined), 2_000);
  t.ok(held >= 150 && held <= 200, `the first agent now spreads its redials over ${held} ms (it was told 10 ms alone)`);
});
