// The dev router's keep-alive pools against real Node HTTP servers standing in for dynos:
// when a dyno leaves the route table (it reports 'stopping' before its SIGTERM), the router
// lets go of its connections to it, so the dyno's `server.close()` ends well inside a 3 s
// grace instead of waiting out its keep-alive timeout (30 s here) and hitting R12.
import { once } from 'node:events';
import { createServer, request, type RequestListener, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import t, { type Test } from 'tap';
import { createRootLogger } from '../../../shared/log.js';
import { DevRouter } from '../../../coordinator/dev-router.js';
import { RouteTable } from '../../../coordinator/route-table.js';

/** Far beyond every bound below: a connection the router keeps would outlive the test. */
const DYNO_KEEP_ALIVE_MS = 30_000;
/** What "promptly" means here: well inside Heroku's shortest grace worth having (3 s). */
const PROMPT_MS = 1_000;

interface Dyno { server: Server; port: number; connections: Set<Socket>; accepted: () => number; closed: (s: Socket) => Promise<void> }

async function dyno(t: Test, handler: RequestListener): Promise<Dyno> {
  const server = createServer(handler);
  server.keepAliveTimeout = DYNO_KEEP_ALIVE_MS;
  const connections = new Set<Socket>();
  const gone = new WeakMap<Socket, Promise<void>>();
  let accepted = 0;
  server.on('connection', (s: Socket) => {
    accepted++;
    connections.add(s);
    gone.set(s, new Promise((resolve) => s.once('close', () => { connections.delete(s); resolve(); })));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  }));
  return { server, port: (server.address() as AddressInfo).port, connections, accepted: () => accepted, closed: (s) => gone.get(s)! };
}

/** Resolves with `p`, or fails naming `what` after `ms`. */
async function within<T>(ms: number, p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms); });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

const closeServer = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));

async function startRouter(t: Test) {
  const routes = new RouteTable();
  const router = new DevRouter({ routes, knowsApp: () => true, upstreamTimeoutMs: 5_000, log: createRootLogger({ level: 'silent' }) });
  t.teardown(() => router.close());
  const front = createServer(router.handle);
  front.listen(0, '127.0.0.1');
  await once(front, 'listening');
  t.teardown(() => new Promise<void>((resolve) => {
    front.close(() => resolve());
    front.closeAllConnections();
  }));
  const port = (front.address() as AddressInfo).port;
  const send = (path = '/'): Promise<{ status: number; body: string; dyno: string }> => new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, headers: { host: `shop.localhost:${port}` } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, dyno: String(res.headers['x-slipway-dyno']) }));
    });
    req.on('error', reject);
    req.end();
  });
  return { routes, send };
}

const state = (id: string, name: string, port: number, s: 'up' | 'stopping') => ({ id, app: 'shop', name, state: s, endpoint: { host: '127.0.0.1', port } });

t.test("a dyno's idle pooled connection is closed as it leaves the route table; other dynos' stay", async (t) => {
  const { routes, send } = await startRouter(t);
  const web1 = await dyno(t, (_req, res) => res.end('web.1'));
  const web2 = await dyno(t, (_req, res) => res.end('web.2'));
  routes.applyDynoState(state('d1', 'web.1', web1.port, 'up'));
  routes.applyDynoState(state('d2', 'web.2', web2.port, 'up'));
  t.same([(await send()).dyno, (await send()).dyno], ['web.1', 'web.2']);
  t.equal(web1.connections.size, 1, "web.1's connection is idle in the router's pool");
  const [pooled] = web1.connections;

  routes.applyDynoState(state('d1', 'web.1', web1.port, 'stopping'));
  await within(PROMPT_MS, web1.closed(pooled!), "the router closes web.1's idle connection");
  const started = Date.now();
  await within(PROMPT_MS, closeServer(web1.server), "web.1's server.close()");
  t.ok(Date.now() - started < PROMPT_MS, `web.1's server.close() took ${Date.now() - started} ms`);

  t.equal((await send()).dyno, 'web.2');
  t.equal(web2.accepted(), 1, "web.2's pooled connection was kept and reused");
});

t.test('a request in flight as its dyno leaves completes; then its connection is closed, not pooled', async (t) => {
  const { routes, send } = await startRouter(t);
  let release: (() => void) | undefined;
  let arrived!: () => void;
  const slowArrived = new Promise<void>((resolve) => { arrived = resolve; });
  const web1 = await dyno(t, (req, res) => {
    if (req.url !== '/slow') return void res.end('fast');
    release = () => res.end('slow answer');
    arrived();
  });
  routes.applyDynoState(state('d1', 'web.1', web1.port, 'up'));
  const answer = send('/slow');
  await slowArrived;
  const [inFlight] = web1.connections;

  routes.applyDynoState(state('d1', 'web.1', web1.port, 'stopping'));
  // The agent's SIGTERM follows 'stopping': the app closes its server while the request runs.
  const closing = closeServer(web1.server);
  release!();
  t.match(await answer, { status: 200, body: 'slow answer', dyno: 'web.1' }, 'the request in flight is answered');
  await within(PROMPT_MS, web1.closed(inFlight!), "the router closes the connection once the response ended");
  await within(PROMPT_MS, closing, "web.1's server.close()");
  t.pass("web.1's server.close() finished well inside its keep-alive timeout");
});
