// The dev HTTP router: `Host: <app>.localhost` (any port) goes round-robin to that app's
// routes, streamed both ways with node's http module. Answers of its own:
//   404 unknown app, 503 app without routes (Heroku's H14), 502 upstream failure (H13),
//   504 no response headers within upstreamTimeoutMs (H12, 30 s).
// The error bodies carry Heroku's router code in `routerCode`; shared/errors.ts has no
// router codes, so the nearest existing codes are used (see the coordinator's report).
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

export class DevRouter {
  /** Keep-alive pool to the dynos, destroyed on close so shutdown does not wait on it. */
  private readonly agent = new Agent({ keepAlive: true });

  constructor(private readonly deps: DevRouterDeps) {}

  readonly handle: RequestListener = (req, res) => {
    const app = appOfHost(req.headers.host);
    if (app === undefined) return sendError(res, 404, 'APP_NOT_FOUND', 'the router serves Host: <app>.localhost');
    const route = this.deps.routes.next(app);
    if (!route) {
      if (!this.deps.knowsApp(app) && !this.deps.routes.hasRoutes(app)) {
        return sendError(res, 404, 'APP_NOT_FOUND', `no such app: ${app}`);
      }
      return sendError(res, 503, 'ROUTER_NO_DYNOS', `app ${app} has no dyno up to serve the request`, { routerCode: 'H14' });
    }
    this.proxy(app, route, req, res);
  };

  close(): void {
    this.agent.destroy();
  }

  private proxy(app: string, route: Route, req: IncomingMessage, res: ServerResponse): void {
    const { log, upstreamTimeoutMs } = this.deps;
    const upstream = httpRequest({
      host: route.host, port: route.port, method: req.method, path: req.url, agent: this.agent,
      headers: forwardedHeaders(req),
    });
    // H12: the dyno must start its answer within the bound; after that the body streams freely.
    const timer = setTimeout(() => {
      if (!res.headersSent) sendError(res, 504, 'ROUTER_UPSTREAM_TIMEOUT', `dyno ${route.name} did not answer within ${upstreamTimeoutMs} ms`, { routerCode: 'H12' });
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
      sendError(res, 502, 'ROUTER_UPSTREAM_FAILED', `dyno ${route.name} failed the request: ${err.message}`, { routerCode: 'H13' });
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
