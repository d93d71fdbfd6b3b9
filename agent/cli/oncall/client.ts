// The on-call CLI's client of the agent's diagnostics endpoint (agent/diagnostics/server.ts):
// at the config's diagnosticsListen (`host:port`, or `unix:/path` through http.request's
// socketPath), with the bearer token the agent keeps in its state dir (diagnosticsTokenFile).
// Every request is bounded (DIAGNOSTICS_CLIENT_TIMEOUT_MS); what goes wrong is a SlipwayError
// with the code the person on call acts on: DIAGNOSTICS_UNREACHABLE (no agent there),
// DIAGNOSTICS_TIMEOUT, or the endpoint's own code (AUTH_INVALID_TOKEN, DYNO_NOT_FOUND, ...).
import { request, type IncomingMessage } from 'node:http';
import { readFileSync } from 'node:fs';
import { isErrorCode, SlipwayError } from '../../../shared/errors.js';

/** The endpoint answers from memory in milliseconds (a status reads /proc/meminfo and statfs);
 * 5 s is the server's own headers bound (DIAGNOSTICS_HEADERS_TIMEOUT_MS): an agent that takes
 * longer has a stalled event loop, which is itself what to report. */
export const DIAGNOSTICS_CLIENT_TIMEOUT_MS = 5_000;

/** Failures of connect that mean nobody answers at that address. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EACCES', 'EPERM', 'ENOTSOCK', 'EADDRNOTAVAIL', 'EPIPE']);

/** diagnosticsListen as start.ts's diagnosticsTarget reads it (not imported: start.ts loads the
 * whole agent, ~0.6 s, which `slipway-agent status` should not pay). */
export function listenTarget(listen: string): { host: string; port: number } | { path: string } {
  if (listen.startsWith('unix:')) return { path: listen.slice('unix:'.length) };
  const i = listen.lastIndexOf(':');
  return { host: listen.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(listen.slice(i + 1)) };
}

export interface DiagnosticsAddress {
  /** As configured: `127.0.0.1:7701` or `unix:/run/slipway/diagnostics.sock`. */
  listen: string;
  tokenFile: string;
}

/** The token the agent wrote (0600, root's). None there: no agent ever ran with this state dir
 * (DIAGNOSTICS_UNREACHABLE); unreadable: AUTH_INVALID_TOKEN, there is no token to show. */
export function readDiagnosticsToken(file: string): string {
  try {
    const t = readFileSync(file, 'utf8').trim();
    if (t) return t;
    throw new Error('empty');
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    if (why === 'ENOENT') throw new SlipwayError('DIAGNOSTICS_UNREACHABLE', `no diagnostics token at ${file}: no agent has started with this state dir (give the agent's --state-dir or --config)`, { cause: err });
    throw new SlipwayError('AUTH_INVALID_TOKEN', `cannot read the diagnostics token from ${file} (${why}): run as root, with the agent's --state-dir or --config`, { cause: err });
  }
}

export class DiagnosticsClient {
  private readonly target: { host: string; port: number } | { path: string };
  private readonly token: string;

  constructor(private readonly address: DiagnosticsAddress, private readonly timeoutMs = DIAGNOSTICS_CLIENT_TIMEOUT_MS) {
    this.target = listenTarget(address.listen);
    this.token = readDiagnosticsToken(address.tokenFile);
  }

  /** The parsed JSON of a 200 answer; an error answer throws its code. */
  async get<T = unknown>(path: string): Promise<T> {
    const res = await this.open(path);
    const body = await readBody(res, this.timeoutMs, this.address.listen);
    if (res.statusCode !== 200) throw errorOf(res.statusCode, body);
    try {
      return JSON.parse(body) as T;
    } catch (err) {
      throw new SlipwayError('INTERNAL', `the agent answered ${path} with a body that is not JSON`, { cause: err });
    }
  }

  /** A streaming answer (`logs -f`): the response once its headers are in; no timeout after that
   * (a quiet dyno writes nothing for hours). An error answer throws its code. */
  async stream(path: string): Promise<IncomingMessage> {
    const res = await this.open(path);
    if (res.statusCode !== 200) throw errorOf(res.statusCode, await readBody(res, this.timeoutMs, this.address.listen));
    res.socket.setTimeout(0);
    return res;
  }

  private open(path: string): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = request({
        ...('path' in this.target ? { socketPath: this.target.path } : { host: this.target.host, port: this.target.port }),
        path, method: 'GET', headers: { authorization: `Bearer ${this.token}` }, timeout: this.timeoutMs,
      }, resolve);
      req.on('timeout', () => req.destroy(new SlipwayError('DIAGNOSTICS_TIMEOUT', `the agent at ${this.address.listen} did not answer ${path} within ${this.timeoutMs} ms`)));
      req.on('error', (err: NodeJS.ErrnoException) => reject(err instanceof SlipwayError ? err : unreachable(this.address.listen, err)));
      req.end();
    });
  }
}

function unreachable(listen: string, err: NodeJS.ErrnoException): SlipwayError {
  if (err.code && UNREACHABLE.has(err.code)) {
    const hint = err.code === 'EACCES' || err.code === 'EPERM' ? 'the socket is root\'s: run as root' : 'is slipway-agent running? (systemctl status slipway-agent)';
    return new SlipwayError('DIAGNOSTICS_UNREACHABLE', `no agent answers at ${listen} (${err.code}): ${hint}`, { cause: err });
  }
  return new SlipwayError('DIAGNOSTICS_UNREACHABLE', `cannot reach the agent at ${listen}: ${err.message}`, { cause: err });
}

/** `{error: {code, message}}` as its SlipwayError; a code this CLI does not know is INTERNAL. */
function errorOf(status: number | undefined, body: string): SlipwayError {
  let e: { code?: unknown; message?: unknown } | undefined;
  try {
    e = (JSON.parse(body) as { error?: { code?: unknown; message?: unknown } }).error;
  } catch { /* not JSON: node's own 400/408 */ }
  const message = typeof e?.message === 'string' ? e.message : `HTTP ${status ?? '?'}`;
  if (typeof e?.code === 'string' && isErrorCode(e.code)) return new SlipwayError(e.code, message);
  return new SlipwayError('INTERNAL', `the agent answered HTTP ${status ?? '?'}: ${message}`);
}

function readBody(res: IncomingMessage, timeoutMs: number, listen: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => res.destroy(new SlipwayError('DIAGNOSTICS_TIMEOUT', `the agent at ${listen} did not finish its answer within ${timeoutMs} ms`)), timeoutMs);
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => { clearTimeout(timer); resolve(Buffer.concat(chunks).toString('utf8')); });
    res.on('error', (err) => { clearTimeout(timer); reject(err instanceof SlipwayError ? err : unreachable(listen, err)); });
  });
}
