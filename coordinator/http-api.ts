// The coordinator's HTTP API (same listener as the agents' WebSocket):
//   GET /apps                        the apps, each with its formations and dyno counts
//   PUT /apps/:app/formation/:type   scale or change one process type
//   GET /apps/:app/formation         the app's formations (no env, no slug URL)
//   PATCH /apps/:app/formation       {updates: [{type, quantity?, size?}]}: scale (Heroku's
//                                    formation batch update)
//   GET /apps/:app/dynos             the app's dynos (Heroku's ps)
//   POST /apps/:app/dynos            {command, size?, env?, attach?, tty?, cols?, rows?}: a one-off
//                                    dyno run.N of the app's release (Heroku's run --detach);
//                                    attach: true answers {attach: {path, secret}}, the CLI's
//                                    leg of the rendezvous its stdio goes through (shared/attach.ts)
//   DELETE /apps/:app/dynos[/:dyno]  restart every dyno, a process type's or one (web.1):
//                                    fresh dynos replace them, preboot style
//   GET|POST /apps/:app/drains       the app's log drains; {url} adds one (https://,
//                                    syslog+tls://), DELETE /apps/:app/drains/:id removes it
//   GET /apps/:app/logs?lines=N&dyno=web.1&source=app|slipway&tail=1
//                                    the app's last log lines (text, Heroku style); with
//                                    tail, then every new line until the client goes
//                                    (log-tail.ts: a slow reader loses the oldest, counted)
//   POST /slugs/prefetch             warm agents' slug caches (slug-prefetch.ts)
//   POST /agents/:id/drain           stop placing dynos there {stopDynos?, graceMs?}
//   POST /agents/:id/undrain         place dynos there again
//   GET /dynos  GET /agents  GET /routes  GET /healthz
//   GET /v1/leader                   200 on the leader (a load balancer's health check); a
//                                    follower answers every path but /healthz with 503
//                                    COORDINATOR_NOT_LEADER (start.ts)
// Every path but GET /healthz and GET /v1/leader needs an API token (api-tokens.ts, checked in
// start.ts before a request reaches this handler).
// Every error is `{error: {code, message}}` with its code's status (docs/errors.md): an
// unknown path HTTP_NOT_FOUND, a known path with another method HTTP_METHOD_NOT_ALLOWED (with
// Allow), and an agent's refusal (a drain) the status of the agent's code.
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Logger } from '../shared/log.js';
import { asSlipwayError, SlipwayError } from '../shared/errors.js';
import type { CommandSender } from '../shared/coordinator-sdk/index.js';
import type { AgentRegistry } from './agent-registry.js';
import type { DynoTable } from './dyno-table.js';
import { parseFormationRequest, parseOneOffRequest, parseScaleRequest, type FormationDefaults } from './formation-body.js';
import type { FormationService } from './formation-service.js';
import { readJsonBody, sendError, sendJson, sendSlipwayError, sendWireError } from './http-json.js';
import type { RouteTable } from './route-table.js';
import { parsePrefetchBody, prefetchSlug } from './slug-prefetch.js';
import { parseDrainBody } from './drain-body.js';
import type { AppLogs } from './app-logs.js';
import type { Rendezvous } from '../shared/coordinator-sdk/rendezvous.js';
import type { DrainManager } from './drains/drain-manager.js';
import { LogTail, TAIL_SESSION_MS, type LogLineFilter, type LogSourceName } from './log-tail.js';

export interface HttpApiDeps {
  registry: AgentRegistry;
  dynos: DynoTable;
  routes: RouteTable;
  formations: FormationService;
  commander: CommandSender;
  /** Link counters for GET /healthz (the SDK's and the coordinator's own). */
  linkStats: () => object;
  /** Attached one-off dynos' relays, for GET /healthz (sessions, bytes waiting). */
  rendezvous?: Rendezvous;
  logs: AppLogs;
  defaults: FormationDefaults;
  log: Logger;
  /** This coordinator's role for /healthz and GET /v1/leader (leader-term.ts). */
  leadership: () => object;
  drains: DrainManager;
  /** Resolves once the changes made so far are in the store (the leader's StoreWriter). */
  durable?: () => Promise<void>;
  /** A tail session's longest life (default TAIL_SESSION_MS; tests shorten it). */
  tailSessionMs?: number;
}

const FORMATION_TYPE_PATH = /^\/apps\/([^/]+)\/formation\/([^/]+)$/;
const FORMATION_PATH = /^\/apps\/([^/]+)\/formation$/;
const LOGS_PATH = /^\/apps\/([^/]+)\/logs$/;
const DRAINS_PATH = /^\/apps\/([^/]+)\/drains(?:\/([^/]+))?$/;
const DYNOS_PATH = /^\/apps\/([^/]+)\/dynos(?:\/([^/]+))?$/;
const DRAIN_PATH = /^\/agents\/([^/]+)\/(drain|undrain)$/;

export function createApiHandler(deps: HttpApiDeps): RequestListener {
  return (req, res) => {
    route(deps, req, res).catch((err: unknown) => {
      const e = asSlipwayError(err);
      if (e.code === 'INTERNAL') deps.log.error({ err, method: req.method, url: req.url }, 'API request failed');
      if (!res.headersSent) sendSlipwayError(res, e);
      else res.destroy();
    });
  };
}

async function route(deps: HttpApiDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://coordinator').pathname;
  const method = req.method ?? 'GET';
  let m: RegExpExecArray | null;
  if ((m = FORMATION_TYPE_PATH.exec(path))) {
    if (method !== 'PUT') return notAllowed(res, method, path, 'PUT');
    const request = parseFormationRequest(decode(m[1]), decode(m[2]), await readJsonBody(req), deps.defaults);
    return sendJson(res, 200, await deps.formations.apply(request));
  }
  if ((m = FORMATION_PATH.exec(path))) {
    if (method === 'PATCH') {
      const updates = parseScaleRequest(decode(m[1]), await readJsonBody(req), deps.defaults);
      return sendJson(res, 200, await deps.formations.scale(decode(m[1]), updates));
    }
    if (method !== 'GET') return notAllowed(res, method, path, 'GET, PATCH');
    return sendJson(res, 200, deps.formations.views(decode(m[1])));
  }
  if (path === '/apps') {
    if (method !== 'GET' && method !== 'HEAD') return notAllowed(res, method, path, 'GET, HEAD');
    return sendJson(res, 200, appViews(deps));
  }
  if ((m = DRAINS_PATH.exec(path))) {
    const app = decode(m[1]);
    if (m[2] !== undefined) {
      if (method !== 'DELETE') return notAllowed(res, method, path, 'DELETE');
      return sendJson(res, 200, deps.drains.remove(app, decode(m[2])));
    }
    if (method === 'POST') {
      const body = await readJsonBody(req) as { url?: unknown } | null;
      if (typeof body !== 'object' || body === null || typeof body.url !== 'string' || Object.keys(body).length !== 1) {
        throw new SlipwayError('PROTOCOL_SCHEMA_VIOLATION', 'a drain body is {"url": "https://... or syslog+tls://..."}');
      }
      if (!deps.formations.knowsApp(app)) throw new SlipwayError('APP_NOT_FOUND', `no app ${JSON.stringify(app)}`);
      const added = deps.drains.add(app, body.url);
      await deps.durable?.();
      return sendJson(res, 201, added);
    }
    if (method !== 'GET' && method !== 'HEAD') return notAllowed(res, method, path, 'GET, HEAD, POST');
    return sendJson(res, 200, deps.drains.list(app));
  }
  if ((m = DYNOS_PATH.exec(path))) {
    const app = decode(m[1]);
    if (method === 'DELETE') return sendJson(res, 200, { app, restarted: await deps.formations.restart(app, m[2] === undefined ? undefined : decode(m[2])) });
    if (m[2] !== undefined) return notAllowed(res, method, path, 'DELETE');
    if (method === 'POST') return sendJson(res, 201, await deps.formations.runOneOff(app, parseOneOffRequest(app, await readJsonBody(req), deps.defaults)));
    if (method !== 'GET' && method !== 'HEAD') return notAllowed(res, method, path, 'GET, HEAD, POST, DELETE');
    return sendJson(res, 200, dynoViews(deps, app));
  }
  if (path === '/slugs/prefetch') {
    if (method !== 'POST') return notAllowed(res, method, path, 'POST');
    const body = parsePrefetchBody(await readJsonBody(req));
    return sendJson(res, 200, { results: await prefetchSlug(deps.registry, deps.commander, body) });
  }
  if ((m = LOGS_PATH.exec(path))) {
    if (method !== 'GET') return notAllowed(res, method, path, 'GET');
    return appLogs(deps, decode(m[1]), new URL(req.url ?? '/', 'http://coordinator').searchParams, req, res);
  }
  if ((m = DRAIN_PATH.exec(path))) {
    if (method !== 'POST') return notAllowed(res, method, path, 'POST');
    // An empty body is a drain that leaves the dynos running.
    const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
    const command = m[2] === 'drain' ? parseDrainBody(hasBody ? await readJsonBody(req) : {}) : { type: 'undrain' as const };
    const result = await deps.commander.sendCommand(decode(m[1]), command);
    if (!result.ok) return sendWireError(res, result.error);
    return sendJson(res, 200, { agent: decode(m[1]), ...result.host });
  }
  const view = READ_ONLY[path];
  if (view) {
    if (method !== 'GET' && method !== 'HEAD') return notAllowed(res, method, path, 'GET, HEAD');
    return sendJson(res, 200, view(deps));
  }
  sendError(res, 'HTTP_NOT_FOUND', `no API endpoint ${method} ${path}`);
}

const READ_ONLY: Record<string, (deps: HttpApiDeps) => unknown> = {
  '/dynos': (d) => d.dynos.views(),
  '/agents': (d) => d.registry.views(),
  '/routes': (d) => d.routes.snapshot(),
  '/v1/leader': (d) => d.leadership(),
  '/healthz': (d) => ({ ok: true, leadership: d.leadership(), agentsConnected: d.registry.connectedCount(), links: d.linkStats(), placement: d.formations.placement.snapshot(), droppedLogLines: d.logs.dropped(), logTails: d.logs.tailStats(), ...(d.rendezvous ? { attach: d.rendezvous.stats() } : {}) }),
};

/** GET /apps: every app with a formation, its process types and how many dynos are up. */
function appViews(deps: HttpApiDeps): unknown[] {
  // One pass over the dynos for every app, not one per app.
  const counts = new Map<string, { up: number; total: number }>();
  for (const d of deps.dynos.views((r) => r.desired === 'run')) {
    const c = counts.get(d.app) ?? { up: 0, total: 0 };
    c.total++;
    if (d.state === 'up') c.up++;
    counts.set(d.app, c);
  }
  return deps.formations.apps().map((app) => ({
    name: app,
    formation: deps.formations.views(app).map((f) => ({ type: f.type, quantity: f.quantity, size: f.size })),
    dynos: counts.get(app) ?? { up: 0, total: 0 },
  }));
}

/** GET /apps/:app/dynos: Heroku's ps, each dyno with its formation's size and command. */
function dynoViews(deps: HttpApiDeps, app: string): unknown[] {
  const formations = new Map(deps.formations.views(app).map((f) => [f.type, f]));
  const dynos = deps.dynos.views((r) => r.app === app && r.desired === 'run');
  if (dynos.length === 0 && formations.size === 0) throw new SlipwayError('APP_NOT_FOUND', `no app ${JSON.stringify(app)}`);
  return dynos.map((d) => {
    const f = formations.get(d.type);
    return { ...d, ...(f ? { size: f.size, command: f.command } : {}) };
  });
}

const SOURCES = new Set<LogSourceName>(['app', 'slipway']);

/** GET /apps/:app/logs: the last lines, and with tail=1 every new one (log-tail.ts). */
function appLogs(deps: HttpApiDeps, app: string, query: URLSearchParams, req: IncomingMessage, res: ServerResponse): void {
  const n = Number(query.get('lines') ?? 100);
  const filter: LogLineFilter = {};
  const dyno = query.get('dyno');
  if (dyno !== null) {
    if (!/^[A-Za-z0-9_-]+(\.\d+)?$/.test(dyno)) throw new SlipwayError('PROTOCOL_SCHEMA_VIOLATION', `dyno ${JSON.stringify(dyno)} is neither a dyno name (web.1) nor a process type (web)`);
    filter.dyno = dyno;
  }
  const source = query.get('source');
  if (source !== null) {
    if (!SOURCES.has(source as LogSourceName)) throw new SlipwayError('PROTOCOL_SCHEMA_VIOLATION', `source must be app or slipway, got ${JSON.stringify(source)}`);
    filter.source = source as LogSourceName;
  }
  const tail = query.get('tail') === '1' || query.get('tail') === 'true';
  const backlog = deps.logs.tail(app, Number.isFinite(n) ? n : 100, filter);
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...(tail ? { 'x-accel-buffering': 'no' } : {}) });
  if (!tail) {
    res.end(backlog.length > 0 ? `${backlog.join('\n')}\n` : '');
    return;
  }
  // The headers go out now: a quiet app may write nothing for a long time.
  res.flushHeaders();
  const session = new LogTail(res);
  for (const line of backlog) session.push(line);
  const stop = deps.logs.followTail(app, session, filter);
  const end = (): void => {
    clearTimeout(timer);
    stop();
    res.end();
  };
  const timer = setTimeout(end, deps.tailSessionMs ?? TAIL_SESSION_MS);
  timer.unref();
  req.socket.once('close', end);
  res.once('close', end);
}

function notAllowed(res: ServerResponse, method: string, path: string, allowed: string): void {
  sendError(res, 'HTTP_METHOD_NOT_ALLOWED', `${method} is not supported on ${path}`, {}, { allow: allowed });
}

function decode(segment: string | undefined): string {
  try {
    return decodeURIComponent(segment ?? '');
  } catch {
    return segment ?? '';
  }
}
