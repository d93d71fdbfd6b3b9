// The dev HTTP router: `Host: <app>.localhost` (any port) goes round-robin to that app's
// routes, streamed both ways with node's http module. Answers of its own, with the status of
// each code (docs/errors.md):
//   APP_NOT_FOUND 404 unknown app, ROUTER_NO_DYNOS 503 app without routes (Heroku's H14),
//   ROUTER_UPSTREAM_FAILED 502 upstream failure (H13), ROUTER_UPSTREAM_TIMEOUT 504 no
//   response headers within upstreamTimeoutMs (H12, 30 s).
// The error bodies also carry Heroku's router code in `routerCode`.
//
// Connections to dynos: one keep-alive pool (an http.Agent) per routed dyno, so that one
// dyno's pool can be closed without touching the others'. When a dyno leaves the route table
// (RouteTable.onRemoved: stopping, crashed, down, starting, or its endpoint moved), its pool
// retires at once: idle sockets are destroyed, and sockets of requests still in flight are
// closed when their response ends instead of going back to the pool (Agent.keepSocketAlive
// returns false). The request headers went out before the removal, so `Connection: close`
// cannot be added to them; closing the socket after the response is its equivalent for the
// dyno. Without this, a dyno's `server.close()` after SIGTERM waits for the router's idle
// connection until the dyno's keep-alive timeout (Node closes only the connections idle when
// close() is called; a request in flight then leaves one idle later), and a well-behaved app
// hits R12. The client's side is left alone: its connection is to the router, not to the dyno,
// and its next request goes to another dyno.
import type { Duplex } from 'node:stream';
import { Agent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import type { Logger } from '../shared/log.js';
import { sendError } from './http-json.js';
import type { Route, RouteTable } from './route-table.js';

export const DYNO_HEADER = 'x-slipway-dyno';

/** Headers that describe one hop, not the request (RFC 9110 section 7.6.1). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

export interface DevRouterDeps {
  routes: RouteTable;
  /** Whether an app exists at all (a formation or dynos), to tell 404 from 503. */
  knowsApp: (app: string) => boolean;
  upstreamTimeoutMs: number;
  log: Logger;
}

/** The keep-alive pool of one dyno's endpoint. Retired once the dyno left the route table:
 * from then on no socket is kept after its response. */
class DynoPool extends Agent {
  retired = false;
  /** Proxied requests not yet closed. */
  inFlight = 0;

  constructor(readonly host: string, readonly port: number) {
    super({ keepAlive: true });
  }

  /** Node's documented hook: a falsy answer destroys the socket instead of pooling it
   * (@types/node declares it void; Node's own returns a boolean). */
  override keepSocketAlive(socket: Duplex): boolean {
    if (this.retired) return false;
    return (super.keepSocketAlive(socket) as unknown) !== false;
  }

  retire(): void {
    this.retired = true;
    // freeSockets is documented read-only: a destroyed socket is taken out of it by the
    // agent's own close listener.
    for (const sockets of Object.values(this.freeSockets)) for (const socket of [...(sockets ?? [])]) socket.destroy();
  }
}

export class DevRouter {
  /** Pools of the routed dynos, by dyno id. Retired pools leave the map; their in-flight
   * sockets close with their responses. */
  private readonly pools = new Map<string, DynoPool>();
  /** Every pool with sockets that may still be in use, destroyed on close() so shutdown does
   * not wait on them. A retired pool stays until its last request closed. */
  private readonly open = new Set<DynoPool>();
  private readonly unsubscribe: () => void;

  constructor(private readonly deps: DevRouterDeps) {
    this.unsubscribe = deps.routes.onRemoved((route) => this.retire(route));
  }

  readonly handle: RequestListener = (req, res) => {
    const app = appOfHost(req.headers.host);
    if (app === undefined) return sendError(res, 'APP_NOT_FOUND', 'the router serves Host: <app>.localhost');
    const route = this.deps.routes.next(app);
    if (!route) {
      if (!this.deps.knowsApp(app) && !this.deps.routes.hasRoutes(app)) {
        return sendError(res, 'APP_NOT_FOUND', `no such app: ${app}`);
      }
      return sendError(res, 'ROUTER_NO_DYNOS', `app ${app} has no dyno up to serve the request`, { routerCode: 'H14' });
    }
    this.proxy(app, route, req, res);
  };

  close(): void {
    this.unsubscribe();
    for (const pool of this.open) pool.destroy();
    this.open.clear();
    this.pools.clear();
  }

  private poolFor(route: Route): DynoPool {
    const pool = this.pools.get(route.dynoId);
    if (pool && pool.host === route.host && pool.port === route.port) return pool;
    // The route table reports a moved endpoint's old route; this only covers a missed one.
    if (pool) this.retirePool(route.dynoId, pool);
    const fresh = new DynoPool(route.host, route.port);
    this.pools.set(route.dynoId, fresh);
    this.open.add(fresh);
    return fresh;
  }

  private retire(route: Route): void {
    const pool = this.pools.get(route.dynoId);
    if (pool && pool.host === route.host && pool.port === route.port) this.retirePool(route.dynoId, pool);
  }

  private retirePool(dynoId: string, pool: DynoPool): void {
    this.pools.delete(dynoId);
    pool.retire();
    if (pool.inFlight === 0) this.open.delete(pool);
  }

  private proxy(app: string, route: Route, req: IncomingMessage, res: ServerResponse): void {
    const { log, upstreamTimeoutMs } = this.deps;
    const pool = this.poolFor(route);
    const upstream = httpRequest({
      host: route.host, port: route.port, method: req.method, path: req.url, agent: pool,
      headers: forwardedHeaders(req),
    });
    pool.inFlight++;
    upstream.on('close', () => {
      // Its socket is pooled, or (retired pool) destroyed with the end of the response.
      if (--pool.inFlight === 0 && pool.retired) this.open.delete(pool);
    });
    // H12: the dyno must start its answer within the bound; after that the body streams freely.
    const timer = setTimeout(() => {
      if (!res.headersSent) sendError(res, 'ROUTER_UPSTREAM_TIMEOUT', `dyno ${route.name} did not answer within ${upstreamTimeoutMs} ms`, { routerCode: 'H12' });
      upstream.destroy();
    }, upstreamTimeoutMs);
    upstream.on('response', (up) => {
      clearTimeout(timer);
      if (res.headersSent) return void up.destroy();
      res.writeHead(up.statusCode ?? 502, up.statusMessage, { ...withoutHopByHop(up.headers), [DYNO_HEADER]: route.name });
      up.pipe(res);
      // The dyno dropped the connection mid-body: the client must see a cut, not a clean end.
      up.on('error', () => res.destroy());
      up.on('close', () => {
        if (!up.complete) res.destroy();
      });
    });
    upstream.on('error', (err) => {
      clearTimeout(timer);
      if (res.writableEnded) return; // the router already answered (504)
      if (res.headersSent) return void res.destroy();
      log.warn({ app, dyno: route.name, dynoId: route.dynoId, err: err.message }, 'upstream request failed');
      sendError(res, 'ROUTER_UPSTREAM_FAILED', `dyno ${route.name} failed the request: ${err.message}`, { routerCode: 'H13' });
    });
    // A client that goes away takes its upstream request with it.
    res.on('close', () => {
      clearTimeout(timer);
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  }
}

/** `myapp.localhost:7780` -> 'myapp'; undefined when the host is not under .localhost. */
export function appOfHost(host: string | undefined): string | undefined {
  if (!host) return undefined;
  const name = host.replace(/:\d+$/, '').toLowerCase().replace(/\.$/, '');
  if (!name.endsWith('.localhost')) return undefined;
  const app = name.slice(0, -'.localhost'.length);
  return app.length > 0 && !app.includes('.') ? app : undefined;
}

function withoutHopByHop(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) if (!HOP_BY_HOP.has(k) && v !== undefined) out[k] = v;
  return out;
}

/** The client's headers plus Heroku's X-Forwarded-* and X-Request-Start. */
function forwardedHeaders(req: IncomingMessage): IncomingHttpHeaders {
  const headers = withoutHopByHop(req.headers);
  const client = req.socket.remoteAddress ?? '';
  const prior = req.headers['x-forwarded-for'];
  headers['x-forwarded-for'] = prior ? `${String(prior)}, ${client}` : client;
  headers['x-forwarded-proto'] = 'http';
  headers['x-forwarded-port'] = String(req.socket.localPort ?? '');
  headers['x-request-start'] = String(Date.now());
  return headers;
}
