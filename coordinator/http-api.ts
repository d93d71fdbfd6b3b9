// The coordinator's HTTP API (same listener as the agents' WebSocket):
//   PUT /apps/:app/formation/:type   scale or change one process type
//   GET /apps/:app/formation         the app's formations (no env, no slug URL)
//   GET /apps/:app/logs?lines=N      the app's last log lines (text, Heroku style)
//   POST /slugs/prefetch             warm agents' slug caches (slug-prefetch.ts)
//   POST /agents/:id/drain           stop placing dynos there {stopDynos?, graceMs?}
//   POST /agents/:id/undrain         place dynos there again
//   GET /dynos  GET /agents  GET /routes  GET /healthz
//   GET /v1/leader                   200 on the leader (a load balancer's health check); a
//                                    follower answers every path but /healthz with 503
//                                    COORDINATOR_NOT_LEADER (start.ts)
// Unauthenticated, like a dev tool: it listens on loopback by default. Anything that puts it
// on a network needs a token in front of it (see the coordinator's report).
// Every error is `{error: {code, message}}` with its code's status (docs/errors.md): an
// unknown path HTTP_NOT_FOUND, a known path with another method HTTP_METHOD_NOT_ALLOWED (with
// Allow), and an agent's refusal (a drain) the status of the agent's code.
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Logger } from '../shared/log.js';
import { asSlipwayError } from '../shared/errors.js';
import type { CommandSender } from '../shared/coordinator-sdk/index.js';
import type { AgentRegistry } from './agent-registry.js';
import type { DynoTable } from './dyno-table.js';
import { parseFormationRequest, type FormationDefaults } from './formation-body.js';
import type { FormationService } from './formation-service.js';
import { readJsonBody, sendError, sendJson, sendSlipwayError, sendWireError } from './http-json.js';
import type { RouteTable } from './route-table.js';
import { parsePrefetchBody, prefetchSlug } from './slug-prefetch.js';
import { parseDrainBody } from './drain-body.js';
import type { AppLogs } from './app-logs.js';

export interface HttpApiDeps {
  registry: AgentRegistry;
  dynos: DynoTable;
  routes: RouteTable;
  formations: FormationService;
  commander: CommandSender;
  /** Link counters for GET /healthz (the SDK's and the coordinator's own). */
  linkStats: () => object;
  logs: AppLogs;
  defaults: FormationDefaults;
  log: Logger;
  /** This coordinator's role for /healthz and GET /v1/leader (leader-term.ts). */
  leadership: () => object;
}

const FORMATION_TYPE_PATH = /^\/apps\/([^/]+)\/formation\/([^/]+)$/;
const FORMATION_PATH = /^\/apps\/([^/]+)\/formation$/;
const LOGS_PATH = /^\/apps\/([^/]+)\/logs$/;
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
    if (method !== 'GET') return notAllowed(res, method, path, 'GET');
    return sendJson(res, 200, deps.formations.views(decode(m[1])));
  }
  if (path === '/slugs/prefetch') {
    if (method !== 'POST') return notAllowed(res, method, path, 'POST');
    const body = parsePrefetchBody(await readJsonBody(req));
    return sendJson(res, 200, { results: await prefetchSlug(deps.registry, deps.commander, body) });
  }
  if ((m = LOGS_PATH.exec(path))) {
    if (method !== 'GET') return notAllowed(res, method, path, 'GET');
    const n = Number(new URL(req.url ?? '/', 'http://coordinator').searchParams.get('lines') ?? 100);
    const text = deps.logs.tail(decode(m[1]), Number.isFinite(n) ? n : 100).join('\n');
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(text ? `${text}\n` : '');
    return;
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
  '/healthz': (d) => ({ ok: true, leadership: d.leadership(), agentsConnected: d.registry.connectedCount(), links: d.linkStats(), placement: d.formations.placement.snapshot(), droppedLogLines: d.logs.dropped() }),
};

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
