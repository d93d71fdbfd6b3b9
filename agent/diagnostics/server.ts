// The operator's diagnostics endpoint: loopback only, bearer token on everything but
// /healthz. It reads the agent through the small read-only AgentView, so it cannot change
// anything, and tests can feed it a fake. Env and commands are never shown (they are
// secrets); DynoStatus carries neither.
//
// Errors are `{error: {code, message}}` with the status of the code (shared/errors.ts):
// another method than GET HTTP_METHOD_NOT_ALLOWED (before the token is looked at: the answer
// tells nothing about the agent), a missing or wrong token AUTH_INVALID_TOKEN, an unknown path
// HTTP_NOT_FOUND, an unknown dyno's logs DYNO_NOT_FOUND, a failure of the view INTERNAL.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { httpStatusOf, type ErrorCode } from '../../shared/errors.js';
import type { AgentIdentity, Capacity, DynoStatus } from '../../shared/protocol.js';
import type { LinkStatus } from '../link/session.js';
import type { Logger } from '../../shared/log.js';
import type { CacheUsage } from '../slugs/store.js';

export interface AgentView {
  identity(): AgentIdentity;
  dynos(): DynoStatus[];
  capacity(): Promise<Capacity>;
  link(): LinkStatus;
  dynoLog(id: string, lines: number): Promise<string[] | undefined>;
  slugs(): Promise<CacheUsage>;
  /** Why new work is refused for the disk or descriptors (agent/host/pressure.ts), if it is. */
  pressure?(): unknown;
}

/** Lines of a dyno's log the endpoint returns at most (Heroku keeps 1,500). */
export const MAX_LOG_LINES = 1_500;

export function tokenMatches(header: string | undefined, token: string): boolean {
  const given = Buffer.from(header?.startsWith('Bearer ') ? header.slice(7) : '');
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}

/** A 2xx answer; errors go through sendError. */
function json(res: ServerResponse, status: 200, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

/** The only way an error leaves this server: the status is the code's. */
function sendError(res: ServerResponse, code: ErrorCode, message: string, headers: Record<string, string> = {}): void {
  res.writeHead(httpStatusOf(code), { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify({ error: { code, message } }));
}

export function createDiagnosticsServer(view: AgentView, token: string, log: Logger): Server {
  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://diagnostics');
    if (req.method !== 'GET') return sendError(res, 'HTTP_METHOD_NOT_ALLOWED', 'GET only', { allow: 'GET' });
    if (url.pathname === '/healthz') return json(res, 200, { ok: true, link: view.link().state });
    if (!tokenMatches(req.headers.authorization, token)) {
      return sendError(res, 'AUTH_INVALID_TOKEN', 'missing or wrong bearer token', { 'www-authenticate': 'Bearer' });
    }
    if (url.pathname === '/v1/dynos') return json(res, 200, view.dynos());
    if (url.pathname === '/v1/slugs') return json(res, 200, await view.slugs());
    if (url.pathname === '/v1/status') {
      return json(res, 200, { agent: view.identity(), capacity: await view.capacity(), link: view.link(), dynos: view.dynos().length, pressure: view.pressure?.() ?? null });
    }
    const m = /^\/v1\/dynos\/([a-z0-9-]{1,63})\/logs$/.exec(url.pathname);
    if (m) {
      const n = Math.min(MAX_LOG_LINES, Math.max(1, Number(url.searchParams.get('lines') ?? 100) || 100));
      const lines = await view.dynoLog(m[1]!, n);
      return lines ? json(res, 200, { lines }) : sendError(res, 'DYNO_NOT_FOUND', 'no such dyno');
    }
    sendError(res, 'HTTP_NOT_FOUND', `no route ${url.pathname}`);
  };
  const server = createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      log.error({ err }, 'diagnostics request failed');
      if (!res.headersSent) sendError(res, 'INTERNAL', 'internal error');
    });
  });
  server.requestTimeout = 10_000;
  return server;
}
