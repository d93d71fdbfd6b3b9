// The coordinator in-process on port 0, with real `ws` clients acting as agents and real
// HTTP servers acting as dynos. Each test closes what it opened.
import { EventEmitter, once } from 'node:events';
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { WebSocket } from 'ws';
import { createRootLogger } from '../../../shared/log.js';
import { DEFAULT_TIMING, type CoordinatorTiming } from '../../../coordinator/config.js';
import { startCoordinator, type RunningCoordinator } from '../../../coordinator/start.js';
import { httpStatusOf, type ErrorCode } from '../../../shared/errors.js';
import type { CoordinatorMessage, DynoStateName, DynoStatus, StartDyno, StopDyno, Welcome } from '../../../shared/protocol.js';
import { DEFAULT_SIZES } from '../../../shared/sizes.js';
import { API_AUTH, TEST_API_TOKEN } from '../../helpers/http.js';

const TOKEN = 'agent-token-for-tests-0123456789';
const MIB = 1024 * 1024;

async function startTestCoordinator(t: Test, timing: Partial<CoordinatorTiming> = {}): Promise<RunningCoordinator> {
  const coordinator = await startCoordinator({
    listen: { host: '127.0.0.1', port: 0 }, routerListen: { host: '127.0.0.1', port: 0 }, token: TOKEN, apiTokens: [TEST_API_TOKEN],
    coordinatorId: 'test-coordinator', defaultStack: 'busybox', sizes: DEFAULT_SIZES,
    timing: { ...DEFAULT_TIMING, commandTimeoutMs: 5_000, upstreamTimeoutMs: 5_000, ...timing },
  }, createRootLogger({ level: 'silent' }));
  t.teardown(() => coordinator.close());
  return coordinator;
}

interface Answer { status: number; headers: IncomingHttpHeaders; body: string; json: any }

async function jsonOf(res: IncomingMessage): Promise<unknown> {
  let body = '';
  res.setEncoding('utf8');
  for await (const c of res) body += c as string;
  return JSON.parse(body);
}

function http(method: string, url: string, options: { body?: unknown; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = options.body === undefined ? undefined : typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
    const req = request(url, { method, agent: false, headers: { ...(payload ? { 'content-type': 'application/json' } : {}), ...options.headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        let json: unknown;
        try { json = JSON.parse(body); } catch { json = undefined; }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** A request to the coordinator's API, with the API token (the router takes none). */
const api = (method: string, url: string, options: { body?: unknown; headers?: Record<string, string> } = {}): Promise<Answer> =>
  http(method, url, { ...options, headers: { ...API_AUTH, ...options.headers } });

/** Polls `probe` until it returns something, failing after a bounded deadline. */
async function until<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const formation = (quantity: number, extra: Record<string, unknown> = {}) => ({
  quantity, size: 'standard-1x', command: 'httpd -f -p $PORT', env: { GREETING: 'hi' },
  slug: { url: 'http://127.0.0.1:1/slug.tgz?X-Amz-Signature=secret', sha256: 'a'.repeat(64) }, ...extra,
});

/** A real WebSocket client that speaks the agent protocol; with serveCommands() it admits
 * every start_dyno, runs an HTTP server per dyno that answers "hello from web.N", and
 * reports starting/up, and on stop_dyno stopping/down. */
class FakeAgent {
  readonly received: CoordinatorMessage[] = [];
  refuseStartsWith: ErrorCode | undefined;
  private readonly inbox = new EventEmitter();
  private readonly dynoServers = new Map<string, Server>();
  private seq = 0;

  private constructor(readonly ws: WebSocket, readonly id: string) {
    ws.on('message', (data) => {
      const message = JSON.parse((data as Buffer).toString('utf8')) as CoordinatorMessage;
      this.received.push(message);
      this.inbox.emit('message', message);
    });
  }

  static async connect(t: Test, url: string, id: string, options: { autoPong?: boolean } = {}): Promise<FakeAgent> {
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${TOKEN}` }, autoPong: options.autoPong ?? true });
    const agent = new FakeAgent(ws, id);
    t.teardown(() => agent.close());
    await once(ws, 'open');
    return agent;
  }

  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  waitFor<M extends CoordinatorMessage>(match: (m: CoordinatorMessage) => boolean, what: string, timeoutMs = 5_000): Promise<M> {
    const seen = this.received.find(match);
    if (seen) return Promise.resolve(seen as M);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.inbox.off('message', check);
        reject(new Error(`agent ${this.id} timed out waiting for ${what}`));
      }, timeoutMs);
      const check = (m: CoordinatorMessage): void => {
        if (!match(m)) return;
        clearTimeout(timer);
        this.inbox.off('message', check);
        resolve(m as M);
      };
      this.inbox.on('message', check);
    });
  }

  of<T extends CoordinatorMessage['type']>(type: T): Extract<CoordinatorMessage, { type: T }>[] {
    return this.received.filter((m) => m.type === type) as Extract<CoordinatorMessage, { type: T }>[];
  }

  /** The agent's event numbering; a test that simulates an agent restart sets a new one. */
  seqEpoch = 'epoch-0001';

  hello(freeMb: number, dynos: DynoStatus[] = []): Promise<Welcome> {
    this.send({
      type: 'hello', protocol: 1,
      agent: { id: this.id, hostname: `${this.id}.internal`, address: '127.0.0.1', version: '0.1.0', runtime: 'fake' },
      seqEpoch: this.seqEpoch,
      capacity: {
        memory: { totalBytes: (freeMb + 1024) * MIB, reservedBytes: 1024 * MIB, allocatableBytes: freeMb * MIB, committedBytes: 0, usedBytes: 0 },
        cpu: { cores: 2, load1: 0 }, dynoCount: dynos.length, slugCache: { entries: 0, bytes: 0, budgetBytes: 0, freeBytes: 0, slugs: [] }, accepting: true,
      },
      dynos,
    });
    return this.waitFor<Welcome>((m) => m.type === 'welcome', 'welcome');
  }

  /** Sends a dyno_state event with the next seq (or the given one); returns its seq. */
  event(dyno: DynoStatus, from: DynoStateName | null, seq = ++this.seq): number {
    this.send({ type: 'event', seq, at: new Date().toISOString(), event: { kind: 'dyno_state', from, dyno } });
    return seq;
  }

  serveCommands(): void {
    this.inbox.on('message', (m: CoordinatorMessage) => {
      if (m.type === 'start_dyno') void this.start(m);
      if (m.type === 'stop_dyno') void this.stop(m);
    });
  }

  async close(): Promise<void> {
    for (const server of this.dynoServers.values()) void closeHttp(server);
    if (this.ws.readyState === WebSocket.CLOSED) return;
    const closed = once(this.ws, 'close');
    this.ws.terminate();
    await closed;
  }

  private async start(cmd: StartDyno): Promise<void> {
    if (this.refuseStartsWith) {
      this.send({ type: 'result', id: cmd.id, ok: false, error: { code: this.refuseStartsWith, message: 'no room here', retryable: true } });
      return;
    }
    this.send({ type: 'result', id: cmd.id, ok: true });
    const { id, app, type, name, size } = cmd.dyno;
    const starting: DynoStatus = { id, app, type, name, state: 'starting', memoryMb: size.memoryMb, since: new Date().toISOString() };
    this.event(starting, null);
    const server = createServer((_req, res) => res.end(`hello from ${name}`));
    this.dynoServers.set(id, server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    this.event({ ...starting, state: 'up', since: new Date().toISOString(), endpoint: { host: '127.0.0.1', port } }, 'starting');
  }

  private async stop(cmd: StopDyno): Promise<void> {
    const server = this.dynoServers.get(cmd.dynoId);
    const started = this.of('start_dyno').find((s) => s.dyno.id === cmd.dynoId);
    if (!server || !started) {
      this.send({ type: 'result', id: cmd.id, ok: false, error: { code: 'DYNO_NOT_FOUND', message: 'no such dyno', retryable: false } });
      return;
    }
    this.send({ type: 'result', id: cmd.id, ok: true });
    const { id, app, type, name, size } = started.dyno;
    const base = { id, app, type, name, memoryMb: size.memoryMb };
    this.event({ ...base, state: 'stopping', since: new Date().toISOString() }, 'up');
    this.dynoServers.delete(id);
    await closeHttp(server);
    this.event({ ...base, state: 'down', since: new Date().toISOString(), exit: { code: 0, signal: null } }, 'stopping');
  }
}

function closeHttp(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

const routerGet = (c: RunningCoordinator, app: string) =>
  http('GET', `${c.routerUrl}/`, { headers: { host: `${app}.localhost:${new URL(c.routerUrl).port}` } });

t.test('a formation of 2 is placed, routed round-robin through the router, and scaled to 0', async (t) => {
  const c = await startTestCoordinator(t);
  const agent = await FakeAgent.connect(t, c.agentUrl, 'host-a');
  agent.serveCommands();
  t.match(await agent.hello(4096), { type: 'welcome', protocol: 1, coordinatorId: 'test-coordinator', ackSeq: 0 });

  const put = await api('PUT', `${c.apiUrl}/apps/shop/formation/web`, { body: formation(2) });
  t.equal(put.status, 200, put.body);
  t.match(put.json, { app: 'shop', type: 'web', quantity: 2 });
  t.same(put.json.dynos.map((d: { name: string }) => d.name), ['web.1', 'web.2']);

  const starts = agent.of('start_dyno');
  t.equal(starts.length, 2, 'one start_dyno per dyno');
  for (const s of starts) {
    t.match(s.dyno.id, /^shop-web-[12]-[a-z0-9]{6}$/);
    t.same(s.dyno.size, DEFAULT_SIZES['standard-1x'], 'the size name is resolved into limits');
    t.match(s.dyno, { app: 'shop', type: 'web', stack: 'busybox', env: { GREETING: 'hi' }, command: 'httpd -f -p $PORT' });
  }

  const routes = await until(async () => {
    const r = (await api('GET', `${c.apiUrl}/routes`)).json;
    return r.shop?.length === 2 ? r : undefined;
  }, 'two routes');
  t.same(routes.shop.map((r: { name: string }) => r.name), ['web.1', 'web.2']);
  t.match(routes.shop[0], { dynoId: String, host: '127.0.0.1', port: Number });

  const answers = await Promise.all([1, 2, 3, 4].map(() => routerGet(c, 'shop')));
  for (const a of answers) {
    t.equal(a.status, 200);
    t.equal(a.body, `hello from ${String(a.headers['x-slipway-dyno'])}`, 'the header names the dyno that answered');
  }
  t.same(new Set(answers.map((a) => a.headers['x-slipway-dyno'])), new Set(['web.1', 'web.2']), 'both dynos serve');

  const dynos = (await api('GET', `${c.apiUrl}/dynos`)).json;
  t.match(dynos, [
    { app: 'shop', type: 'web', name: 'web.1', agentId: 'host-a', state: 'up', endpoint: { host: '127.0.0.1' } },
    { app: 'shop', type: 'web', name: 'web.2', agentId: 'host-a', state: 'up' },
  ]);
  t.match((await api('GET', `${c.apiUrl}/agents`)).json, [{ id: 'host-a', hostname: 'host-a.internal', connected: true, lastSeq: 4 }]);

  const down = await api('PUT', `${c.apiUrl}/apps/shop/formation/web`, { body: formation(0) });
  t.equal(down.status, 200, down.body);
  t.same(down.json.dynos, []);
  const stops = agent.of('stop_dyno');
  t.same(stops.map((s) => s.dynoId).sort(), starts.map((s) => s.dyno.id).sort(), 'stop_dyno for both dynos');
  t.ok(stops.every((s) => s.graceMs === undefined), 'the default grace applies');

  await until(async () => {
    const r = (await api('GET', `${c.apiUrl}/routes`)).json;
    return Object.keys(r).length === 0 ? true : undefined;
  }, 'routes to empty');
  await until(async () => ((await api('GET', `${c.apiUrl}/dynos`)).json.length === 0 ? true : undefined), 'dynos gone');
  const none = await routerGet(c, 'shop');
  t.equal(none.status, 503, 'the app exists but nothing is up');
  t.match(none.json, { error: { code: 'ROUTER_NO_DYNOS', routerCode: 'H14' } });
  t.equal((await routerGet(c, 'nosuchapp')).status, 404);
});

t.test('a changed command replaces the dyno: the new one starts, then the old one stops', async (t) => {
  const c = await startTestCoordinator(t);
  const agent = await FakeAgent.connect(t, c.agentUrl, 'host-a');
  agent.serveCommands();
  await agent.hello(4096);
  t.equal((await api('PUT', `${c.apiUrl}/apps/shop/formation/web`, { body: formation(1) })).status, 200);
  const same = await api('PUT', `${c.apiUrl}/apps/shop/formation/web`, { body: formation(1, { slug: { url: 'http://127.0.0.1:1/other-url.tgz', sha256: 'a'.repeat(64) } }) });
  t.equal(same.status, 200);
  t.equal(agent.of('start_dyno').length, 1, 'a new URL for the same slug replaces nothing');

  const put = await api('PUT', `${c.apiUrl}/apps/shop/formation/web`, { body: formation(1, { command: 'httpd -v -f -p $PORT' }) });
  t.equal(put.status, 200, put.body);
  const [first, second] = agent.of('start_dyno');
  t.equal(second?.dyno.name, 'web.1');
  t.equal(second?.dyno.command, 'httpd -v -f -p $PORT');
  t.not(second?.dyno.id, first?.dyno.id);
  t.same(agent.of('stop_dyno').map((s) => s.dynoId), [first?.dyno.id], 'the old dyno is stopped');
  const routes = await until(async () => {
    const r = (await api('GET', `${c.apiUrl}/routes`)).json;
    return r.shop?.length === 1 && r.shop[0].dynoId === second?.dyno.id ? r : undefined;
  }, 'the route to move to the new dyno');
  t.equal(routes.shop[0].name, 'web.1');
});

t.test('a wrong or missing bearer token gets 401 and no link', async (t) => {
  const c = await startTestCoordinator(t);
  for (const headers of [{ authorization: 'Bearer wrong' }, {}, { authorization: `Basic ${TOKEN}` }]) {
    const ws = new WebSocket(c.agentUrl, { headers });
    ws.on('error', () => {}); // terminating a refused handshake reports an error; expected here
    t.teardown(() => ws.terminate());
    const [, res] = (await once(ws, 'unexpected-response')) as [unknown, IncomingMessage];
    t.equal(res.statusCode, 401);
    t.match(await jsonOf(res), { error: { code: 'AUTH_INVALID_TOKEN' } });
  }
  const other = new WebSocket(c.agentUrl.replace('/v1/agent', '/elsewhere'), { headers: { authorization: `Bearer ${TOKEN}` } });
  other.on('error', () => {});
  t.teardown(() => other.terminate());
  const [, res] = (await once(other, 'unexpected-response')) as [unknown, IncomingMessage];
  t.equal(res.statusCode, 404, 'only the agent path upgrades');
  t.match(await jsonOf(res), { error: { code: 'HTTP_NOT_FOUND' } }, 'an unknown path, not an unknown message type');
  t.same((await api('GET', `${c.apiUrl}/agents`)).json, []);
});

t.test('an invalid frame is answered with an error and the link survives', async (t) => {
  const c = await startTestCoordinator(t);
  const agent = await FakeAgent.connect(t, c.agentUrl, 'host-a');
  agent.send('{nope');
  t.match(await agent.waitFor((m) => m.type === 'error', 'an error'), { type: 'error', code: 'PROTOCOL_INVALID_JSON' });
  agent.send({ type: 'capacity', capacity: {} });
  t.match(await agent.waitFor((m) => m.type === 'error' && m.code === 'PROTOCOL_SCHEMA_VIOLATION', 'a schema error'), { ref: 'capacity' });
  agent.send({ type: 'result', id: 'c-1', ok: true });
  t.match(await agent.waitFor((m) => m.type === 'error' && m.code === 'PROTOCOL_NOT_READY', 'not ready'), { ref: 'c-1' });
  agent.send({ type: 'format_disk', id: 'c-2' });
  t.match(await agent.waitFor((m) => m.type === 'error' && m.code === 'PROTOCOL_UNKNOWN_TYPE', 'unknown type'), { ref: 'c-2' });
  t.match(await agent.hello(1024), { type: 'welcome', ackSeq: 0 }, 'the same link still works');
  const health = (await api('GET', `${c.apiUrl}/healthz`)).json;
  t.match(health, { ok: true, agentsConnected: 1, links: { invalidFrames: { PROTOCOL_INVALID_JSON: 1, PROTOCOL_SCHEMA_VIOLATION: 1, PROTOCOL_UNKNOWN_TYPE: 1 } } });
});

t.test('a duplicate event seq is acked but applied once; lastSeq and routes survive a reconnect', async (t) => {
  const c = await startTestCoordinator(t);
  const agent = await FakeAgent.connect(t, c.agentUrl, 'host-a');
  const since = (ms: number) => new Date(Date.now() + ms).toISOString();
  const dyno: DynoStatus = { id: 'blog-web-1-abcdef', app: 'blog', type: 'web', name: 'web.1', state: 'starting', memoryMb: 512, since: since(0) };
  await agent.hello(4096, [dyno]);
  t.match((await api('GET', `${c.apiUrl}/dynos`)).json, [{ id: dyno.id, state: 'starting', agentId: 'host-a' }], 'a dyno from the hello is adopted');

  agent.event({ ...dyno, state: 'up', since: since(1), endpoint: { host: '127.0.0.1', port: 5001 } }, 'starting', 1);
  await agent.waitFor((m) => m.type === 'ack' && m.seq === 1, 'ack 1');
  agent.event({ ...dyno, state: 'crashed', since: since(2) }, 'up', 1);
  await agent.waitFor((m) => m.type === 'ack' && agent.of('ack').length === 2, 'the second ack');
  t.same(agent.of('ack').map((a) => a.seq), [1, 1], 'both acked with seq 1');
  t.match((await api('GET', `${c.apiUrl}/dynos`)).json, [{ id: dyno.id, state: 'up' }], 'the duplicate was not applied');
  t.same((await api('GET', `${c.apiUrl}/routes`)).json, { blog: [{ dynoId: dyno.id, name: 'web.1', host: '127.0.0.1', port: 5001 }] });
  t.match((await api('GET', `${c.apiUrl}/healthz`)).json, { links: { duplicateEvents: 1 } });

  await agent.close();
  await until(async () => ((await api('GET', `${c.apiUrl}/agents`)).json[0]?.connected === false ? true : undefined), 'the agent to show disconnected');
  t.equal(Object.keys((await api('GET', `${c.apiUrl}/routes`)).json).length, 1, 'routes stay while the link is down');

  const again = await FakeAgent.connect(t, c.agentUrl, 'host-a');
  const fresh: DynoStatus = { ...dyno, id: 'blog-web-2-ghijkl', name: 'web.2', since: since(3) };
  t.match(await again.hello(4096, [fresh]), { ackSeq: 1 }, 'welcome carries the last applied seq');
  t.match((await api('GET', `${c.apiUrl}/dynos`)).json, [
    { id: dyno.id, state: 'down', reason: { code: 'DYNO_NOT_FOUND' } },
    { id: fresh.id, state: 'starting' },
  ], 'a dyno missing from the hello is down');
  t.same((await api('GET', `${c.apiUrl}/routes`)).json, {});

  // This agent restarted and numbers its events from 1 again under a new epoch: they must
  // not be taken for duplicates of the old numbering.
  await again.close();
  const restarted = await FakeAgent.connect(t, c.agentUrl, 'host-a');
  restarted.seqEpoch = 'epoch-0002';
  t.match(await restarted.hello(4096, [fresh]), { ackSeq: 0 }, 'a new epoch is welcomed with ackSeq 0');
  restarted.event({ ...fresh, state: 'up', since: since(4), endpoint: { host: '127.0.0.1', port: 5002 } }, 'starting', 1);
  await restarted.waitFor((m) => m.type === 'ack' && m.seq === 1, 'ack 1 on the new link');
  t.match((await api('GET', `${c.apiUrl}/routes`)).json, { blog: [{ dynoId: fresh.id, port: 5002 }] }, 'the renumbered event was applied');
  restarted.event({ ...fresh, state: 'crashed', since: since(5) }, 'up', 1);
  await restarted.waitFor((m) => m.type === 'ack' && restarted.of('ack').length === 2, 'the second ack on the new link');
  t.match((await api('GET', `${c.apiUrl}/dynos`)).json[1], { id: fresh.id, state: 'up' }, 'duplicates are ignored again');
});

t.test('a refused dyno goes to the next agent; a formation that fits nowhere changes nothing', async (t) => {
  const c = await startTestCoordinator(t);
  const roomy = await FakeAgent.connect(t, c.agentUrl, 'host-a');
  roomy.refuseStartsWith = 'INSUFFICIENT_CAPACITY';
  roomy.serveCommands();
  await roomy.hello(8192);
  const small = await FakeAgent.connect(t, c.agentUrl, 'host-b');
  small.serveCommands();
  await small.hello(1024);

  const put = await api('PUT', `${c.apiUrl}/apps/shop/formation/web`, { body: formation(1) });
  t.equal(put.status, 200, put.body);
  t.equal(roomy.of('start_dyno').length, 1, 'the agent with the most room was asked first');
  t.match(put.json.dynos, [{ name: 'web.1', agentId: 'host-b' }]);

  const big = await api('PUT', `${c.apiUrl}/apps/shop/formation/worker`, { body: formation(2, { size: 'performance-l' }) });
  t.equal(big.status, 503);
  t.match(big.json, { error: { code: 'INSUFFICIENT_CAPACITY', message: /nothing was changed/ } });
  t.equal(roomy.of('start_dyno').length + small.of('start_dyno').length, 2, 'no start_dyno was sent for it');
  t.same((await api('GET', `${c.apiUrl}/apps/shop/formation`)).json.map((f: { type: string }) => f.type), ['web']);
});

t.test('the API refuses bad requests with codes', async (t) => {
  const c = await startTestCoordinator(t);
  const unknownSize = await api('PUT', `${c.apiUrl}/apps/shop/formation/web`, { body: formation(1, { size: 'huge' }) });
  t.equal(unknownSize.status, 422);
  t.match(unknownSize.json, { error: { code: 'SIZE_UNKNOWN', message: /huge/ } });
  const badJson = await api('PUT', `${c.apiUrl}/apps/shop/formation/web`, { body: '{"quantity":' });
  t.match(badJson, { status: 400, json: { error: { code: 'PROTOCOL_INVALID_JSON' } } });
  const badBody = await api('PUT', `${c.apiUrl}/apps/shop/formation/web`, { body: { quantity: 1 } });
  t.match(badBody, { status: 422, json: { error: { code: 'PROTOCOL_SCHEMA_VIOLATION' } } });
  const noAgents = await api('PUT', `${c.apiUrl}/apps/shop/formation/web`, { body: formation(1) });
  t.match(noAgents, { status: 503, json: { error: { code: 'INSUFFICIENT_CAPACITY' } } });
  t.match(await api('GET', `${c.apiUrl}/nope`), { status: 404, json: { error: { code: 'HTTP_NOT_FOUND' } } });
  t.match(await api('DELETE', `${c.apiUrl}/dynos`), { status: 405, headers: { allow: 'GET, HEAD' }, json: { error: { code: 'HTTP_METHOD_NOT_ALLOWED' } } });
  t.match(await api('GET', `${c.apiUrl}/apps/shop/formation/web`), { status: 405, headers: { allow: 'PUT' }, json: { error: { code: 'HTTP_METHOD_NOT_ALLOWED' } } });
  const tooLarge = await api('PUT', `${c.apiUrl}/apps/shop/formation/web`, { body: { ...formation(1), env: { BIG: 'x'.repeat(MIB + 1) } } });
  t.match(tooLarge, { status: 413, json: { error: { code: 'HTTP_BODY_TOO_LARGE' } } });
  const badApp = await api('PUT', `${c.apiUrl}/apps/Shop!/formation/web`, { body: formation(1) });
  t.match(badApp, { status: 422, json: { error: { code: 'PROTOCOL_SCHEMA_VIOLATION', message: /app name/ } } });
  for (const answer of [unknownSize, badJson, badBody, noAgents, tooLarge, badApp]) {
    const code = answer.json.error.code as ErrorCode;
    t.equal(answer.status, httpStatusOf(code), `${code} is answered with its status from the table`);
  }
  t.match(await api('GET', `${c.apiUrl}/healthz`), { status: 200, json: { ok: true } });
});

t.test('a newer link of the same agent replaces the older one', async (t) => {
  const c = await startTestCoordinator(t);
  const first = await FakeAgent.connect(t, c.agentUrl, 'host-a');
  await first.hello(1024);
  const closed = once(first.ws, 'close');
  const second = await FakeAgent.connect(t, c.agentUrl, 'host-a');
  await second.hello(1024);
  const [code] = (await closed) as [number];
  t.equal(code, 4000);
  t.match((await api('GET', `${c.apiUrl}/agents`)).json, [{ id: 'host-a', connected: true }]);
});

t.test('an agent that stops answering pings is cut off; one that answers stays', async (t) => {
  const c = await startTestCoordinator(t, { pingIntervalMs: 50 });
  const silent = await FakeAgent.connect(t, c.agentUrl, 'host-silent', { autoPong: false });
  const alive = await FakeAgent.connect(t, c.agentUrl, 'host-alive');
  await silent.hello(1024);
  await alive.hello(1024);
  await once(silent.ws, 'close');
  t.equal(alive.ws.readyState, WebSocket.OPEN);
  t.match((await api('GET', `${c.apiUrl}/agents`)).json, [{ id: 'host-alive', connected: true }, { id: 'host-silent', connected: false }]);
});

t.test('POST /slugs/prefetch sends prefetch_slug to every connected agent and reports each answer', async (t) => {
  const c = await startTestCoordinator(t, { commandTimeoutMs: 500 });
  const warm = await FakeAgent.connect(t, c.agentUrl, 'agent-warm');
  const cold = await FakeAgent.connect(t, c.agentUrl, 'agent-cold');
  const silent = await FakeAgent.connect(t, c.agentUrl, 'agent-silent');
  for (const a of [warm, cold, silent]) await a.hello(4096);
  const answer = (agent: FakeAgent, reply: (id: string, sha: string) => unknown) => {
    void agent.waitFor((m) => m.type === 'prefetch_slug', 'prefetch_slug').then((m) => {
      const p = m as Extract<CoordinatorMessage, { type: 'prefetch_slug' }>;
      agent.send(reply(p.id, p.slug.sha256));
    });
  };
  answer(warm, (id, sha) => ({ type: 'result', id, ok: true, slug: { sha256: sha, cached: true } }));
  answer(cold, (id, sha) => ({ type: 'result', id, ok: true, slug: { sha256: sha, cached: false } }));
  const slug = { url: 'http://127.0.0.1:1/slug.tgz?X-Amz-Signature=secret', sha256: 'b'.repeat(64) };

  const res = await api('POST', `${c.apiUrl}/slugs/prefetch`, { body: { slug } });
  t.equal(res.status, 200, res.body);
  const byAgent = Object.fromEntries((res.json.results as any[]).map((r) => [r.agent, r]));
  t.same(byAgent['agent-warm'], { agent: 'agent-warm', ok: true, cached: true });
  t.same(byAgent['agent-cold'], { agent: 'agent-cold', ok: true, cached: false });
  t.match(byAgent['agent-silent'], { ok: false, error: { code: 'COMMAND_TIMEOUT' } }, 'a silent agent does not hold up the others');
  t.same(silent.of('prefetch_slug').map((m) => m.slug), [slug], 'each agent got the slug reference as given');

  const named = await api('POST', `${c.apiUrl}/slugs/prefetch`, { body: { slug, agents: ['agent-gone'] } });
  t.match(named.json.results, [{ agent: 'agent-gone', ok: false, error: { code: 'AGENT_UNREACHABLE' } }], 'an agent that is not connected is named in the answer');
  t.equal(warm.of('prefetch_slug').length, 1, 'agents not named get nothing');
  t.match(await api('POST', `${c.apiUrl}/slugs/prefetch`, { body: { slug: { url: slug.url, sha256: 'xyz' } } }), { status: 422, json: { error: { code: 'PROTOCOL_SCHEMA_VIOLATION' } } });
  t.match(await api('GET', `${c.apiUrl}/slugs/prefetch`), { status: 405 });
});

t.test('the welcome carries the desired set: kept dynos by id, a lost one with its spec; and a reconnect spread', async (t) => {
  const c = await startTestCoordinator(t);
  const agent = await FakeAgent.connect(t, c.agentUrl, 'host-a');
  agent.serveCommands();
  const first = await agent.hello(4096);
  t.same(first.desired, [], 'nothing placed yet: an empty desired set');
  t.match(first.reconnect, { spreadMs: 10 }, 'one known agent: a 10 ms spread (100 reconnects a second)');
  t.equal((await api('PUT', `${c.apiUrl}/apps/blog/formation/web`, { body: formation(2) })).status, 200);
  const started = agent.of('start_dyno').map((m) => m.dyno);
  await until(async () => ((await api('GET', `${c.apiUrl}/dynos`)).json.filter((d: DynoStatus) => d.state === 'up').length === 2 || undefined), 'both up');

  // The agent comes back holding only web.1 (web.2's container was lost with the host's disk).
  await agent.close();
  const back = await FakeAgent.connect(t, c.agentUrl, 'host-a');
  const kept = started.find((d) => d.name === 'web.1')!;
  const lost = started.find((d) => d.name === 'web.2')!;
  const status: DynoStatus = { id: kept.id, app: 'blog', type: 'web', name: 'web.1', state: 'up', memoryMb: 512, since: new Date().toISOString(), endpoint: { host: '127.0.0.1', port: 5999 } };
  const welcome = await back.hello(4096, [status]);
  t.same(welcome.desired?.map((d) => d.id).sort(), [kept.id, lost.id].sort(), 'both are desired');
  t.notOk(welcome.desired?.find((d) => d.id === kept.id)?.spec, 'the running one by id only');
  t.same(welcome.desired?.find((d) => d.id === lost.id)?.spec, lost, 'the lost one with the spec it was started from, to start it again');
  t.notMatch((await api('GET', `${c.apiUrl}/dynos`)).json.find((d: DynoStatus) => d.id === lost.id), { state: 'down' }, 'and it is not recorded down meanwhile');

});
