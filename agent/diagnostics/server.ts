// The operator's diagnostics endpoint: loopback only, bearer token on everything but
// /healthz. It reads the agent through the small read-only AgentView, so it cannot change
// anything, and tests can feed it a fake. Env and commands are never shown (they are
// secrets); DynoStatus carries neither.
//
// Errors are `{error: {code, message}}` with the status of the code (shared/errors.ts):
// another method than GET HTTP_METHOD_NOT_ALLOWED (before the token is looked at: the answer
// tells nothing about the agent), a missing or wrong token AUTH_INVALID_TOKEN, an unknown path
// HTTP_NOT_FOUND, an unknown dyno's logs DYNO_NOT_FOUND, a failure of the view INTERNAL; before
// all of these, a request with a body HTTP_BODY_NOT_ALLOWED and one over the header bounds
// HTTP_HEADERS_TOO_LARGE.
//
// The endpoint must survive a local client that abuses it (issue 14): supervision of the dynos
// and the coordinator link share this process's event loop. So every request is bounded before
// any route sees it (the DIAGNOSTICS_* constants below): header bytes and count, the time to
// send them, the connections held, the requests per connection; and a request with a body is
// refused unread (HTTP_BODY_NOT_ALLOWED), since every route is a GET. It listens on loopback TCP
// or on a unix socket of mode 0600 (listenDiagnostics).
import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { chmodSync } from 'node:fs';
import { lstat, mkdir, unlink } from 'node:fs/promises';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Duplex } from 'node:stream';
import { httpStatusOf, type ErrorCode } from '../../shared/errors.js';
import type { AgentIdentity, Capacity, DynoStatus } from '../../shared/protocol.js';
import type { LinkStatus } from '../link/session.js';
import type { Logger } from '../../shared/log.js';
import type { CacheUsage } from '../slugs/store.js';
import type { Decision } from './decisions.js';
import { followLog } from './log-follow.js';

export interface AgentView {
  identity(): AgentIdentity;
  dynos(): DynoStatus[];
  capacity(): Promise<Capacity>;
  link(): LinkStatus;
  dynoLog(id: string, lines: number): Promise<string[] | undefined>;
  slugs(): Promise<CacheUsage>;
  /** Why new work is refused for the disk or descriptors (agent/host/pressure.ts), if it is. */
  pressure?(): unknown;
  /** The Prometheus text exposition (agent/metrics/), produced at scrape time. */
  metrics?(): Promise<{ contentType: string; text: string }>;
  /** The decision log (decisions.ts), oldest first; `dyno` is a dyno's id or name. */
  decisions?(filter: { dyno?: string; limit?: number }): Decision[];
  /** The last exits of a dyno (by id or name), newest last; undefined for an unknown dyno. */
  exits?(dyno: string): readonly object[] | undefined;
  /** Calls `onLine` with each new line of the dyno (log-follow.ts) until the returned function is
   * called; undefined for an unknown dyno. */
  followLog?(id: string, onLine: (line: string) => void): (() => void) | undefined;
}

/** Lines of a dyno's log the endpoint returns at most (Heroku keeps 1,500). */
export const MAX_LOG_LINES = 1_500;
/** Decisions one `GET /v1/events` returns at most (the ring holds DECISION_RING_SIZE). */
export const MAX_DECISIONS = 500;

/** Bytes of a request's headers (node's maxHeaderSize; its default is 16 KiB). A
 * diagnostics request is a path, a Host and a 32-character bearer token, well under 1 KiB;
 * 8 KiB is nginx's default header buffer (large_client_header_buffers), which every CLI and
 * Prometheus fits. Over it: HTTP_HEADERS_TOO_LARGE (431). */
export const DIAGNOSTICS_MAX_HEADER_BYTES = 8 * 1024;
/** Headers a request may carry. curl sends 3, Prometheus's scraper 6 (with the token); 32 is
 * room for what a proxy adds (node's default is 2,000). More is HTTP_HEADERS_TOO_LARGE too. */
export const DIAGNOSTICS_MAX_HEADERS = 32;
/** Time a client has to send the request's headers (node's default 60 s). A client on loopback sends them in one segment in well under a millisecond; 5 s is
 * room for a client on a host whose CPUs are saturated, and bounds how long one that dribbles
 * them (slowloris) holds a connection. Answered 408 and closed. */
export const DIAGNOSTICS_HEADERS_TIMEOUT_MS = 5_000;
/** Time to receive the whole request (node's default 300 s): the same as the headers plus room,
 * since no request has a body. Must not be under the headers timeout (node refuses that). */
export const DIAGNOSTICS_REQUEST_TIMEOUT_MS = 10_000;
/** How often node looks for connections past those two timeouts. Its default, 30 s, would let a
 * slow client hold its connection up to 30 s past the bound. */
export const DIAGNOSTICS_TIMEOUT_CHECK_MS = 1_000;
/** An idle keep-alive connection is closed after this (node's default, written down). Prometheus
 * scrapes every 15-60 s, so it reconnects per scrape anyway; the CLI makes one request. */
export const DIAGNOSTICS_KEEP_ALIVE_MS = 5_000;
/** Requests one connection may make before the server closes it: a bounded keep-alive. */
export const DIAGNOSTICS_MAX_REQUESTS_PER_SOCKET = 100;
/** Connections held at once (server.maxConnections); more are closed at accept. A host has one
 * or two scrapers and a few people on call, each with `logs -f`; 32 is half the agent's default
 * descriptor headroom (fdHeadroom, 64), so diagnostics alone can never make the host refuse
 * dynos with AGENT_FD_LIMIT. */
export const DIAGNOSTICS_MAX_CONNECTIONS = 32;
/** Bound on the probe of an existing socket file: does an agent still answer on it? */
const STALE_SOCKET_PROBE_MS = 1_000;

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
    if (url.pathname === '/metrics' && view.metrics) {
      const { contentType, text } = await view.metrics();
      res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' });
      res.end(text);
      return;
    }
    if (url.pathname === '/v1/events' && view.decisions) {
      const dyno = url.searchParams.get('dyno') ?? undefined;
      const limit = Math.min(MAX_DECISIONS, Math.max(1, Number(url.searchParams.get('limit') ?? MAX_DECISIONS) || MAX_DECISIONS));
      return json(res, 200, { decisions: view.decisions({ ...(dyno ? { dyno } : {}), limit }) });
    }
    const exits = /^\/v1\/dynos\/([a-z0-9.-]{1,63})\/exits$/.exec(url.pathname);
    if (exits && view.exits) {
      const records = view.exits(exits[1]!);
      return records ? json(res, 200, { exits: records }) : sendError(res, 'DYNO_NOT_FOUND', 'no such dyno');
    }
    const m = /^\/v1\/dynos\/([a-z0-9-]{1,63})\/logs$/.exec(url.pathname);
    if (m) {
      const n = Math.min(MAX_LOG_LINES, Math.max(1, Number(url.searchParams.get('lines') ?? 100) || 100));
      // `?follow=1`: NDJSON as the agent keeps the lines (log-follow.ts); `logs -f`.
      if (url.searchParams.get('follow') === '1' && view.followLog) {
        return (await followLog(view, m[1]!, n, res)) ? undefined : sendError(res, 'DYNO_NOT_FOUND', 'no such dyno');
      }
      const lines = await view.dynoLog(m[1]!, n);
      return lines ? json(res, 200, { lines }) : sendError(res, 'DYNO_NOT_FOUND', 'no such dyno');
    }
    sendError(res, 'HTTP_NOT_FOUND', `no route ${url.pathname}`);
  };
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    if (refused(req, res)) return;
    route(req, res).catch((err: unknown) => {
      log.error({ err }, 'diagnostics request failed');
      if (!res.headersSent) sendError(res, 'INTERNAL', 'internal error');
    });
  };
  const server = createServer({
    maxHeaderSize: DIAGNOSTICS_MAX_HEADER_BYTES,
    headersTimeout: DIAGNOSTICS_HEADERS_TIMEOUT_MS,
    requestTimeout: DIAGNOSTICS_REQUEST_TIMEOUT_MS,
    connectionsCheckingInterval: DIAGNOSTICS_TIMEOUT_CHECK_MS,
    keepAliveTimeout: DIAGNOSTICS_KEEP_ALIVE_MS,
  }, handle);
  // Node's parser refuses a request with more (HPE_HEADER_OVERFLOW, as for too many bytes).
  server.maxHeadersCount = DIAGNOSTICS_MAX_HEADERS;
  server.maxRequestsPerSocket = DIAGNOSTICS_MAX_REQUESTS_PER_SOCKET;
  server.maxConnections = DIAGNOSTICS_MAX_CONNECTIONS;
  // Without this node answers `Expect: 100-continue` itself, inviting the body; the guard in
  // `handle` refuses it instead.
  server.on('checkContinue', handle);
  server.on('clientError', answerClientError);
  return server;
}

/**
 * The request guard, before any route: a request with a body (any Content-Length but 0, or
 * chunked) is answered HTTP_BODY_NOT_ALLOWED and its connection cut, without reading the body.
 * (Requests over the header bounds never get here: answerClientError.)
 */
function refused(req: IncomingMessage, res: ServerResponse): boolean {
  const length = req.headers['content-length'];
  if (req.headers['transfer-encoding'] !== undefined || (length !== undefined && Number(length) !== 0)) {
    // Node's own end of a request reads the rest of the body to keep the connection (it would
    // read a whole 1 GiB upload and throw it away); destroying the socket once the answer is
    // written cuts the upload instead. This listener runs after node's, before any read.
    res.once('finish', () => req.socket.destroy());
    sendError(res, 'HTTP_BODY_NOT_ALLOWED', 'the diagnostics endpoint takes no request body', { connection: 'close' });
    return true;
  }
  return false;
}

/**
 * A request node could not parse or that broke a bound inside the parser. Over
 * DIAGNOSTICS_MAX_HEADER_BYTES or DIAGNOSTICS_MAX_HEADERS is answered like every other error here, with its code; a timeout
 * and a malformed request get node's own bare 408 and 400. The connection is closed.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (socket.writable && (socket as Socket).bytesWritten === 0) {
    if (err.code === 'HPE_HEADER_OVERFLOW') {
      const code: ErrorCode = 'HTTP_HEADERS_TOO_LARGE';
      const body = JSON.stringify({ error: { code, message: `request headers over ${DIAGNOSTICS_MAX_HEADER_BYTES} bytes or ${DIAGNOSTICS_MAX_HEADERS} headers` } });
      const status = httpStatusOf(code);
      socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json\r\n`
        + `cache-control: no-store\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      socket.write('HTTP/1.1 408 Request Timeout\r\nconnection: close\r\n\r\n');
    } else {
      socket.write('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
    }
  }
  socket.destroy();
}

/** Where the endpoint listens: loopback TCP, or a unix socket (`unix:/run/slipway/diagnostics.sock`). */
export type DiagnosticsTarget = { host: string; port: number } | { path: string };

/**
 * Starts `server` on `target`; resolves with the address clients use, `http://host:port` or
 * `unix:PATH`. A unix socket is made mode 0600 (the agent runs as root: only root may connect;
 * the bearer token is still asked for) before the first connection is accepted. A socket file
 * left by a crashed agent is replaced; one an agent still answers on is EADDRINUSE, as a TCP
 * port would be. libuv unlinks the socket when the server closes.
 */
export async function listenDiagnostics(server: Server, target: DiagnosticsTarget): Promise<string> {
  if ('path' in target) {
    await mkdir(dirname(target.path), { recursive: true, mode: 0o755 });
    await removeStaleSocket(target.path);
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const listening = (): void => {
      server.off('error', reject);
      try {
        // 'listening' runs before the loop polls the socket: nothing is accepted before this.
        if ('path' in target) chmodSync(target.path, 0o600);
        resolve();
      } catch (err) {
        server.close();
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    };
    if ('path' in target) server.listen(target.path, listening);
    else server.listen(target.port, target.host, listening);
  });
  if ('path' in target) return `unix:${target.path}`;
  const bound = server.address() as AddressInfo;
  return `http://${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`;
}

async function removeStaleSocket(path: string): Promise<void> {
  const st = await lstat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (!st) return;
  // Never delete what is not a socket: a config pointing at a regular file is a mistake to show.
  if (!st.isSocket()) throw Object.assign(new Error(`${path} exists and is not a socket`), { code: 'EEXIST' });
  const answered = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.setTimeout(STALE_SOCKET_PROBE_MS, () => { probe.destroy(); resolve(true); });
    probe.once('connect', () => { probe.destroy(); resolve(true); });
    probe.once('error', () => resolve(false));
  });
  if (answered) throw Object.assign(new Error(`an agent already listens on ${path}`), { code: 'EADDRINUSE' });
  await unlink(path).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'ENOENT') throw err; });
}
