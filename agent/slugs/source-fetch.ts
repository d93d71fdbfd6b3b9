// Reading a slug's bytes from its source under the store's rules (store.ts): the source that
// serves the URL's scheme, one total deadline over every attempt (fetchTimeoutMs), retries of
// transient failures by the policy of retry.ts, and a size the source declares checked against
// the compressed budget and made room for before a byte is read. What is done with the bytes
// (extracted in one pass, or copied and hashed for a signature check) is the caller's attempt.
import type { Readable } from 'node:stream';
import { asSlipwayError, SlipwayError } from '../../shared/errors.js';
import { redactUrl, type Logger } from '../../shared/log.js';
import type { SlugLimits } from './budget.js';
import type { SlugSource } from './http-source.js';
import { retryDelayMs, type RetryPolicy } from './retry.js';

export interface SourceFetchOptions {
  sources: SlugSource[];
  fetchTimeoutMs: number;
  retry: RetryPolicy;
  limits: SlugLimits;
  log: Logger;
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Evicts what it must so `bytes` fit, or throws SLUG_DISK_FULL (the store's). */
  ensureRoom: (bytes: number) => Promise<void>;
}

/** One try at a slug's source; the signal is the total deadline (its reason says why). */
export type SlugAttempt<T> = (url: URL, source: SlugSource, signal: AbortSignal) => Promise<T>;

export class SourceFetch {
  constructor(private readonly o: SourceFetchOptions) {}

  /**
   * Runs `tryOnce` until it succeeds, fails for good (retry.ts) or the deadline passes; logs
   * `<what> started`, each failure, and `ready(result)` at info when it is given.
   */
  async withRetries<T>(url: string, sha: string | undefined, what: string, tryOnce: SlugAttempt<T>, ready?: (done: T) => { msg: string; fields: Record<string, unknown> }): Promise<T> {
    const shown = redactUrl(url);
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new SlipwayError('SLUG_UNSUPPORTED_SOURCE', `slug URL is not a valid URL: ${shown}`);
    }
    const source = this.o.sources.find((s) => s.schemes.includes(parsed.protocol));
    if (!source) throw new SlipwayError('SLUG_UNSUPPORTED_SOURCE', `slug URL scheme ${parsed.protocol} is not supported`);

    const started = performance.now();
    const deadline = new AbortController();
    const timer = setTimeout(() => {
      deadline.abort(new SlipwayError('SLUG_FETCH_FAILED', `slug download from ${shown} exceeded its deadline of ${this.o.fetchTimeoutMs} ms`));
    }, this.o.fetchTimeoutMs);
    const log = this.o.log.child({ sha256: sha, url: shown });
    log.info(`${what} started`);
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          const done = await tryOnce(parsed, source, deadline.signal);
          if (ready) {
            const { msg, fields } = ready(done);
            log.info({ ...fields, attempt, ms: Math.round(performance.now() - started) }, msg);
          }
          return done;
        } catch (err) {
          const failure = asSlipwayError(deadline.signal.aborted ? deadline.signal.reason : err);
          const delay = deadline.signal.aborted ? undefined : retryDelayMs(attempt, failure, this.o.retry);
          if (delay === undefined) {
            log.warn({ err: failure, code: failure.code, attempt, ms: Math.round(performance.now() - started) }, `${what} failed`);
            throw failure;
          }
          log.warn({ code: failure.code, err: failure.message, attempt, retryInMs: delay }, `${what} failed; retrying`);
          await this.o.sleep(delay, deadline.signal).catch(() => undefined);
          if (deadline.signal.aborted) throw asSlipwayError(deadline.signal.reason);
        }
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The source's stream and the compressed size it declares, bounded: a declared size over the
   * compressed budget is SLUG_TOO_LARGE before any byte is read, and `roomFactor` x the declared
   * size is made room for (nothing when undefined). The deadline's abort destroys the stream
   * with its reason.
   */
  async open(url: URL, source: SlugSource, signal: AbortSignal, roomFactor: number | undefined): Promise<{ stream: Readable; declared: number | undefined }> {
    const stream = await source.open(url, signal);
    // The room check below is async: an error the stream hits meanwhile must not be an
    // unhandled 'error' event; the reader finds it in stream.errored.
    stream.on('error', () => undefined);
    signal.addEventListener('abort', () => stream.destroy(signal.reason as Error), { once: true });
    if (signal.aborted) stream.destroy(signal.reason as Error);
    const declared = declaredLength(stream);
    if (declared !== undefined) {
      if (declared > this.o.limits.maxCompressedBytes) {
        stream.destroy();
        throw new SlipwayError('SLUG_TOO_LARGE', `slug breaks a budget: ${declared} compressed bytes exceed ${this.o.limits.maxCompressedBytes}`);
      }
      if (roomFactor !== undefined) {
        await this.o.ensureRoom(declared * roomFactor).catch((err: unknown) => {
          stream.destroy();
          throw err;
        });
      }
    }
    return { stream, declared };
  }
}

/** The compressed size the source announced (HTTP Content-Length), if any. */
function declaredLength(stream: unknown): number | undefined {
  const headers = (stream as { headers?: Record<string, unknown> }).headers;
  const raw = headers?.['content-length'] ?? (stream as { slugBytes?: unknown }).slugBytes;
  const n = typeof raw === 'string' ? Number(raw) : typeof raw === 'number' ? raw : NaN;
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}
