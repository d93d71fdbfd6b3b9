// The developer CLI's client of the coordinator's API (coordinator/http-api.ts): the API URL
// and token of credentials.ts, every request bounded, every failure a SlipwayError with the
// code to act on: COORDINATOR_UNREACHABLE (nobody answers at the URL, or TLS failed),
// COORDINATOR_TIMEOUT, or the API's own code (AUTH_INVALID_TOKEN, APP_NOT_FOUND,
// INSUFFICIENT_CAPACITY, ...). An API code this CLI does not know (a newer coordinator's) is
// kept as it came: `error.code` is printed, the exit status is 1 as for any failure.
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isErrorCode, SlipwayError } from '../shared/errors.js';
import type { Credentials } from './credentials.js';

/** A read of the API answers from the coordinator's memory; 30 s is a loaded coordinator. */
export const API_TIMEOUT_MS = 30_000;
/** Scale and restart answer once the agents admitted the dynos and, for a restart or a
 * release, once the replacements are up (the coordinator's preboot wait is 90 s). */
export const API_CHANGE_TIMEOUT_MS = 150_000;

/** An error the API answered with a code this CLI does not know. */
export class ApiError extends Error {
  constructor(readonly code: string, message: string, readonly status: number) {
    super(message);
  }
}

export class ApiClient {
  constructor(private readonly creds: Credentials) {}

  get url(): string {
    return this.creds.apiUrl;
  }

  /** The API URL, token and CA (an attached run dials its rendezvous leg with the CA). */
  get credentials(): Readonly<Credentials> {
    return this.creds;
  }

  /** The parsed JSON of a 2xx answer; an error answer throws its code. */
  async json<T = unknown>(method: string, path: string, body?: unknown, timeoutMs = API_TIMEOUT_MS): Promise<T> {
    const res = await this.open(method, path, body, timeoutMs);
    const text = await readBody(res, timeoutMs, this.creds.apiUrl);
    if ((res.statusCode ?? 0) >= 300) throw errorOf(res.statusCode, text);
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new SlipwayError('INTERNAL', `the coordinator answered ${method} ${path} with a body that is not JSON`, { cause: err });
    }
  }

  /** A streaming answer (`logs --tail`): the response once its headers are in, with no
   * timeout after that (a quiet app writes nothing for hours). */
  async stream(path: string, timeoutMs = API_TIMEOUT_MS): Promise<IncomingMessage> {
    const res = await this.open('GET', path, undefined, timeoutMs);
    if ((res.statusCode ?? 0) >= 300) throw errorOf(res.statusCode, await readBody(res, timeoutMs, this.creds.apiUrl));
    res.socket.setTimeout(0);
    return res;
  }

  private open(method: string, path: string, body: unknown, timeoutMs: number): Promise<IncomingMessage> {
    const url = new URL(path, this.creds.apiUrl);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const options = {
        method, timeout: timeoutMs,
        headers: {
          authorization: `Bearer ${this.creds.token}`, accept: 'application/json',
          ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
        },
        ...(this.creds.ca !== undefined ? { ca: this.creds.ca } : {}),
      };
      const req = url.protocol === 'https:' ? httpsRequest(url, options, resolve) : httpRequest(url, options, resolve);
      req.on('timeout', () => req.destroy(new SlipwayError('COORDINATOR_TIMEOUT', `the coordinator at ${this.creds.apiUrl} did not answer ${method} ${url.pathname} within ${timeoutMs} ms`)));
      req.on('error', (err: NodeJS.ErrnoException) => reject(err instanceof SlipwayError ? err : unreachable(this.creds.apiUrl, err)));
      req.end(payload);
    });
  }
}

function unreachable(apiUrl: string, err: NodeJS.ErrnoException): SlipwayError {
  return new SlipwayError('COORDINATOR_UNREACHABLE', `cannot reach the coordinator at ${apiUrl}: ${err.code ?? err.message} (is SLIPWAY_API_URL right?)`, { cause: err });
}

/** `{error: {code, message}}` as its error; a body that is not one is the status. */
export function errorOf(status: number | undefined, body: string): SlipwayError | ApiError {
  let e: { code?: unknown; message?: unknown } | undefined;
  try {
    e = (JSON.parse(body) as { error?: { code?: unknown; message?: unknown } }).error;
  } catch { /* not JSON: a proxy's page */ }
  const message = typeof e?.message === 'string' ? e.message : `HTTP ${status ?? '?'} from the coordinator`;
  if (typeof e?.code === 'string') return isErrorCode(e.code) ? new SlipwayError(e.code, message) : new ApiError(e.code, message, status ?? 0);
  return new ApiError('INTERNAL', `the coordinator answered HTTP ${status ?? '?'} without an error body`, status ?? 0);
}

function readBody(res: IncomingMessage, timeoutMs: number, apiUrl: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => res.destroy(new SlipwayError('COORDINATOR_TIMEOUT', `the coordinator at ${apiUrl} did not finish its answer within ${timeoutMs} ms`)), timeoutMs);
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => { clearTimeout(timer); resolve(Buffer.concat(chunks).toString('utf8')); });
    res.on('error', (err) => { clearTimeout(timer); reject(err instanceof SlipwayError ? err : unreachable(apiUrl, err)); });
  });
}
