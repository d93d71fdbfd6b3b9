// The slug source for http:// and https:// URLs (presigned S3 URLs in production), built on
// node's http/https modules. It resolves with the response body once a 2xx status arrived;
// the store hashes and extracts it. Its own bounds are the connect/stall timeout and the
// redirect limit; the total deadline is the caller's AbortSignal (the store arms it).
//
// URLs may carry presigned signatures in their query string: they are secrets, so logs and
// error messages only ever show redactUrl(url).
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Readable } from 'node:stream';
import { SlipwayError } from '../../shared/errors.js';
import { redactUrl, type Logger } from '../../shared/log.js';
import { sourceFailure } from './failures.js';
import { parseRetryAfter } from './retry.js';

/** Where slug bytes come from; one implementation per URL scheme family (s3://, file:// later). */
export interface SlugSource {
  /** URL protocols served, with the colon, as `URL.protocol` spells them: `['http:', 'https:']`. */
  readonly schemes: readonly string[];
  /**
   * The slug's bytes, as they are stored (the SHA-256 is over exactly these bytes).
   * Rejects with a SlipwayError (SLUG_NOT_FOUND, SLUG_FORBIDDEN, SLUG_FETCH_FAILED, ...);
   * the stream fails with one when the transfer breaks. Aborting `signal` destroys the
   * request or the stream with the signal's reason.
   */
  open(url: URL, signal: AbortSignal): Promise<Readable>;
}

/** No byte for this long while connecting or downloading fails the fetch (brief: 30 s). */
export const DEFAULT_STALL_TIMEOUT_MS = 30_000;
/** Redirects followed before giving up (S3 and CDNs use one or two). */
export const MAX_REDIRECTS = 5;

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

export interface HttpSlugSourceOptions {
  log: Logger;
  stallTimeoutMs?: number;
  maxRedirects?: number;
}

/** True for names and addresses that stay on this host (plain http is allowed there). */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  if (h === 'localhost' || h === '::1') return true;
  return net.isIPv4(h) && h.startsWith('127.');
}

function abortReason(signal: AbortSignal): SlipwayError {
  const r: unknown = signal.reason;
  return r instanceof SlipwayError ? r : sourceFailure(r ?? new Error('slug download aborted'));
}

export class HttpSlugSource implements SlugSource {
  readonly schemes = ['http:', 'https:'] as const;
  private readonly log: Logger;
  private readonly stallTimeoutMs: number;
  private readonly maxRedirects: number;

  constructor(opts: HttpSlugSourceOptions) {
    this.log = opts.log;
    this.stallTimeoutMs = opts.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
    this.maxRedirects = opts.maxRedirects ?? MAX_REDIRECTS;
  }

  async open(url: URL, signal: AbortSignal): Promise<Readable> {
    let current = url;
    for (let hops = 0; ; hops++) {
      const answer = await this.get(current, signal);
      if (answer.kind === 'body') return answer.body;
      if (hops >= this.maxRedirects) {
        throw new SlipwayError('SLUG_FETCH_FAILED', `slug download from ${redactUrl(url.href)} redirected more than ${this.maxRedirects} times`, { retryable: false });
      }
      let next: URL;
      try {
        next = new URL(answer.location, current);
      } catch (err) {
        throw new SlipwayError('SLUG_FETCH_FAILED', `slug download from ${redactUrl(url.href)} redirected to an invalid location`, { cause: err, retryable: false });
      }
      const allowed = next.protocol === 'https:' || (next.protocol === 'http:' && isLoopbackHost(next.hostname));
      if (!allowed) {
        throw new SlipwayError('SLUG_UNSUPPORTED_SOURCE', `slug download from ${redactUrl(url.href)} redirected to ${redactUrl(next.href)}: only https redirects are followed`);
      }
      this.log.debug({ from: redactUrl(current.href), to: redactUrl(next.href), status: answer.status }, 'slug download redirected');
      current = next;
    }
  }

  /** One GET: a body stream for 2xx, a location for redirects, a SlipwayError otherwise. */
  private get(url: URL, signal: AbortSignal): Promise<{ kind: 'body'; body: Readable } | { kind: 'redirect'; location: string; status: number }> {
    return new Promise((resolve, reject) => {
      if (signal.aborted) {
        reject(abortReason(signal));
        return;
      }
      const shown = redactUrl(url.href);
      const mod = url.protocol === 'https:' ? https : http;
      let res: http.IncomingMessage | undefined;
      let delivered = false;
      // Fail whichever part is alive: before the answer the request, after it the body.
      const kill = (err: SlipwayError): void => {
        if (res && delivered) res.destroy(err);
        else req.destroy(err);
      };
      const onAbort = (): void => kill(abortReason(signal));
      const cleanup = (): void => signal.removeEventListener('abort', onAbort);
      const req = mod.request(url, {
        method: 'GET',
        agent: false, // one connection per download: no pooled socket carries a stale timeout
        timeout: this.stallTimeoutMs, // socket inactivity, armed before connect
        headers: { 'accept-encoding': 'identity', 'user-agent': 'slipway-agent' },
      });
      req.on('timeout', () => {
        kill(new SlipwayError('SLUG_FETCH_FAILED', `slug download from ${shown} stalled: no data for ${this.stallTimeoutMs} ms`));
      });
      req.on('error', (err) => {
        cleanup();
        const failure = err instanceof SlipwayError ? err : sourceFailure(err);
        if (!delivered) reject(failure);
        else if (res && !res.destroyed) res.destroy(failure);
      });
      signal.addEventListener('abort', onAbort, { once: true });
      req.on('response', (r) => {
        res = r;
        const status = r.statusCode ?? 0;
        if (status >= 200 && status < 300) {
          delivered = true;
          r.on('close', cleanup);
          resolve({ kind: 'body', body: r });
          return;
        }
        cleanup();
        r.resume(); // discard the error page
        req.destroy();
        const location = r.headers.location;
        if (REDIRECT_STATUSES.has(status) && typeof location === 'string' && location !== '') {
          resolve({ kind: 'redirect', location, status });
        } else if (status === 404 || status === 410) {
          reject(new SlipwayError('SLUG_NOT_FOUND', `slug not found at ${shown} (HTTP ${status})`));
        } else if (status === 401 || status === 403) {
          reject(new SlipwayError('SLUG_FORBIDDEN', `slug source refused access to ${shown} (HTTP ${status})`));
        } else {
          // 5xx, 408 and 429 are transient (retryable; 503/429 may say when to come back);
          // any other 4xx will answer the same next time.
          const transient = status >= 500 || status === 408 || status === 429;
          const retryAfterMs = parseRetryAfter(r.headers['retry-after']);
          reject(new SlipwayError('SLUG_FETCH_FAILED', `slug download from ${shown} answered HTTP ${status}`, {
            retryable: transient,
            ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
          }));
        }
      });
      req.end();
    });
  }
}
