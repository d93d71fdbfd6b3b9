// The slug source for s3://bucket/key URLs, through the AWS SDK v3 (GetObject). It resolves
// with the object's body once S3 answered 2xx; the store hashes and extracts it.
//
// - One S3Client per source, reused by every download (its keep-alive agent and its
//   credential cache are shared). `maxAttempts: 1`: the slug store retries with backoff across
//   all sources, so the SDK must not retry underneath it.
// - Credentials: the SDK's default chain (env, shared config/credentials files, ECS task role,
//   EC2 instance profile via IMDSv2) unless the caller passes some (tests do).
// - Bounds: no answer (headers) within `stallTimeoutMs`, or no body byte for `stallTimeoutMs`
//   while the consumer keeps up, fails the fetch; the total deadline is the caller's
//   AbortSignal (the store arms it), handed to the SDK as its abortSignal.
// - The bytes are returned exactly as stored: no decompression, and the SDK's own response
//   checksum validation is left to `WHEN_REQUIRED` (the store checks SHA-256 end to end).
//
// Logs and error messages only ever show `s3://bucket/key`: never credentials, and never the
// SDK's raw error (its enumerable fields echo request details), which is summarised instead.
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { GetObjectCommand, S3Client, type GetObjectCommandOutput, type S3ClientConfig } from '@aws-sdk/client-s3';
import { SlipwayError } from '../../shared/errors.js';
import { redactUrl, type Logger } from '../../shared/log.js';
import { sourceFailure } from './failures.js';
import { DEFAULT_STALL_TIMEOUT_MS, type SlugSource } from './http-source.js';
import { parseRetryAfter } from './retry.js';

export interface S3SlugSourceOptions {
  log: Logger;
  /** AWS region; when absent the SDK's chain decides (AWS_REGION, shared config). */
  region?: string;
  /** An S3-compatible endpoint (MinIO, s3rver, ...): `http://127.0.0.1:9000`. */
  endpoint?: string;
  /** Path-style addressing (`endpoint/bucket/key`), which most S3-compatible servers need. */
  forcePathStyle?: boolean;
  /** No answer or no body byte for this long fails the fetch (default 30 s). */
  stallTimeoutMs?: number;
  /** Tests only: production uses the SDK's default credential chain. */
  credentials?: S3ClientConfig['credentials'];
}

/** Where an s3:// URL points. */
export interface S3Location {
  bucket: string;
  key: string;
}

// Current S3 rules are 3-63 of [a-z0-9.-]; legacy us-east-1 buckets may also have capitals
// and underscores and be up to 255 long.
const BUCKET_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]$/;
const MAX_KEY_BYTES = 1024;

/**
 * Bucket and key of `s3://bucket/some/key.tgz` (the key percent-decoded). Anything else
 * (no bucket, no key, a port, credentials, a query or fragment) is SLUG_UNSUPPORTED_SOURCE.
 */
export function parseS3Url(url: URL): S3Location {
  const bad = (why: string): SlipwayError =>
    new SlipwayError('SLUG_UNSUPPORTED_SOURCE', `invalid s3 slug URL ${redactUrl(url.href)}: ${why}; expected s3://bucket/key`);
  if (url.protocol !== 's3:') throw bad('the scheme is not s3');
  if (url.username !== '' || url.password !== '') throw bad('credentials do not belong in the URL');
  if (url.port !== '') throw bad('a port does not belong in the URL (use the source endpoint)');
  if (url.search !== '' || url.hash !== '') throw bad("a query or fragment is not supported (percent-encode '?' and '#' in keys)");
  const bucket = url.hostname;
  if (!BUCKET_RE.test(bucket)) throw bad(bucket === '' ? 'no bucket' : 'not a valid bucket name');
  let key: string;
  try {
    key = decodeURIComponent(url.pathname.replace(/^\//, ''));
  } catch {
    throw bad('the key is not valid percent-encoding');
  }
  if (key === '') throw bad('no key');
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw bad(`the key is longer than ${MAX_KEY_BYTES} bytes`);
  return { bucket, key };
}

interface SdkErrorLike {
  name?: unknown;
  Code?: unknown;
  code?: unknown;
  message?: unknown;
  $metadata?: { httpStatusCode?: unknown; requestId?: unknown };
  $response?: { statusCode?: unknown; headers?: Record<string, string | undefined> };
}

const NOT_FOUND = new Set(['NoSuchKey', 'NoSuchBucket', 'NotFound', 'NoSuchVersion']);
const FORBIDDEN = new Set([
  'AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AllAccessDisabled', 'AccountProblem',
  'InvalidObjectState', // archived in Glacier: not readable until restored
]);
// Answers S3 gives for conditions that pass by themselves (or after the SDK adjusted its clock).
const TRANSIENT = new Set([
  'SlowDown', 'Throttling', 'ThrottlingException', 'TooManyRequestsException', 'RequestLimitExceeded',
  'ServiceUnavailable', 'InternalError', 'RequestTimeout', 'RequestTimeTooSkewed', 'ExpiredToken', 'TimeoutError',
]);

function header(headers: Record<string, string | undefined> | undefined, name: string): string | undefined {
  if (!headers) return undefined;
  const k = Object.keys(headers).find((h) => h.toLowerCase() === name);
  return k === undefined ? undefined : headers[k];
}

/**
 * An SDK or network failure of GetObject as a SlipwayError. The cause is a summary (name,
 * message, status, request id), not the SDK error itself.
 */
export function s3Failure(err: unknown, shown: string): SlipwayError {
  if (err instanceof SlipwayError) return err;
  const e: SdkErrorLike = typeof err === 'object' && err !== null ? (err) : {};
  const name = typeof e.Code === 'string' ? e.Code : typeof e.name === 'string' ? e.name : 'Error';
  const rawStatus = e.$metadata?.httpStatusCode ?? e.$response?.statusCode;
  const status = typeof rawStatus === 'number' ? rawStatus : undefined;
  const code = typeof e.code === 'string' ? e.code : undefined;
  const message = typeof e.message === 'string' ? e.message.split('\n')[0] ?? '' : String(err);
  const cause = Object.assign(new Error(`${name}: ${message}`), {
    name,
    ...(code === undefined ? {} : { code }),
    ...(status === undefined ? {} : { status }),
    ...(typeof e.$metadata?.requestId === 'string' ? { requestId: e.$metadata.requestId } : {}),
  });
  const what = `${name}${status === undefined ? '' : `, HTTP ${status}`}`;

  if (NOT_FOUND.has(name) || status === 404) {
    return new SlipwayError('SLUG_NOT_FOUND', `slug not found at ${shown} (${what})`, { cause });
  }
  if (TRANSIENT.has(name) || (status !== undefined && (status >= 500 || status === 429 || status === 408))) {
    const retryAfterMs = parseRetryAfter(header(e.$response?.headers, 'retry-after'));
    return new SlipwayError('SLUG_FETCH_FAILED', `slug download from ${shown} failed: ${what}: ${message}`, {
      cause,
      retryable: true,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    });
  }
  if (FORBIDDEN.has(name) || status === 401 || status === 403) {
    return new SlipwayError('SLUG_FORBIDDEN', `S3 refused access to ${shown} (${what})`, { cause });
  }
  if (name === 'CredentialsProviderError') {
    // Nothing in the chain had credentials (or IMDS was unreachable): may be transient.
    return new SlipwayError('SLUG_FETCH_FAILED', `no AWS credentials to fetch ${shown} (env, shared config, ECS, EC2 instance metadata all failed): ${message}`, { cause, retryable: true });
  }
  if (status !== undefined) {
    // Another 3xx/4xx (wrong region without a redirect, a malformed request, ...): retrying
    // the same request gets the same answer.
    return new SlipwayError('SLUG_FETCH_FAILED', `slug download from ${shown} failed: ${what}: ${message}`, { cause, retryable: false });
  }
  // No HTTP answer: a network error, a timeout, a region or endpoint that cannot be resolved.
  return new SlipwayError('SLUG_FETCH_FAILED', `slug download from ${shown} failed: ${code ?? name}: ${message}`, { cause, retryable: true });
}

function abortReason(signal: AbortSignal): SlipwayError {
  const r: unknown = signal.reason;
  return r instanceof SlipwayError ? r : sourceFailure(r ?? new Error('slug download aborted'));
}

/**
 * The body as handed to the store: the SDK's stream passed through, failing with a
 * SlipwayError when the source stalls or the connection breaks (node's http client fails a
 * body that ends short of its Content-Length).
 */
class BodyGuard extends Transform {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly shown: string,
    private readonly stallTimeoutMs: number,
  ) {
    super();
    this.arm();
  }

  private arm(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      // Bytes still waiting for the consumer: the slowness is downstream, not the source's.
      if (this.readableLength > 0 || this.writableLength > 0) {
        this.arm();
        return;
      }
      this.destroy(new SlipwayError('SLUG_FETCH_FAILED', `slug download from ${this.shown} stalled: no data for ${this.stallTimeoutMs} ms`));
    }, this.stallTimeoutMs);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.arm();
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    clearTimeout(this.timer);
    cb();
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    clearTimeout(this.timer);
    cb(err);
  }
}

export class S3SlugSource implements SlugSource {
  readonly schemes = ['s3:'] as const;
  private readonly log: Logger;
  private readonly stallTimeoutMs: number;
  private readonly client: S3Client;

  constructor(opts: S3SlugSourceOptions) {
    this.log = opts.log;
    this.stallTimeoutMs = opts.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
    this.client = new S3Client({
      maxAttempts: 1, // the store retries, with backoff, across all sources
      followRegionRedirects: true, // a bucket in another region answers 301: follow it once
      responseChecksumValidation: 'WHEN_REQUIRED',
      ...(opts.region === undefined ? {} : { region: opts.region }),
      ...(opts.endpoint === undefined ? {} : { endpoint: opts.endpoint }),
      ...(opts.forcePathStyle === undefined ? {} : { forcePathStyle: opts.forcePathStyle }),
      ...(opts.credentials === undefined ? {} : { credentials: opts.credentials }),
    });
  }

  /** Closes the client's sockets. Downloads in flight fail; do it on shutdown. */
  destroy(): void {
    this.client.destroy();
  }

  async open(url: URL, signal: AbortSignal): Promise<Readable> {
    const { bucket, key } = parseS3Url(url);
    const shown = `s3://${bucket}/${key}`;
    if (signal.aborted) throw abortReason(signal);

    // Until S3 answers, give up on the caller's abort or after stallTimeoutMs; the SDK's
    // request is aborted either way. Racing also covers the credential lookup, which the
    // SDK does not abort.
    const attempt = new AbortController();
    let giveUp!: (err: SlipwayError) => void;
    const gaveUp = new Promise<never>((_resolve, reject) => {
      giveUp = (err) => {
        reject(err);
        attempt.abort(err);
      };
    });
    const onAbort = (): void => giveUp(abortReason(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => {
      giveUp(new SlipwayError('SLUG_FETCH_FAILED', `slug download from ${shown} stalled: no answer from S3 within ${this.stallTimeoutMs} ms`));
    }, this.stallTimeoutMs);

    this.log.debug({ bucket, key }, 'requesting slug from S3');
    const sent = this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: attempt.signal });
    let out: GetObjectCommandOutput;
    try {
      out = await Promise.race([sent, gaveUp]);
    } catch (err) {
      if (attempt.signal.aborted) {
        // An answer that arrives after all the same must not leak its socket.
        sent.then((late) => destroyBody(late.Body), () => undefined);
        throw attempt.signal.reason as SlipwayError;
      }
      throw s3Failure(err, shown);
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }

    const body = out.Body;
    if (!(body instanceof Readable)) {
      destroyBody(body);
      throw new SlipwayError('SLUG_FETCH_FAILED', `S3 answered ${shown} without a body stream`);
    }
    const guard = new BodyGuard(shown, this.stallTimeoutMs);
    const onAbortBody = (): void => {
      guard.destroy(abortReason(signal));
    };
    body.on('error', (err) => guard.destroy(s3Failure(err, shown)));
    guard.on('close', () => {
      signal.removeEventListener('abort', onAbortBody);
      if (!body.readableEnded) body.destroy();
    });
    signal.addEventListener('abort', onAbortBody, { once: true });
    if (signal.aborted) onAbortBody();
    body.pipe(guard);
    this.log.debug({ bucket, key, bytes: out.ContentLength }, 'S3 is sending the slug');
    return guard;
  }
}

function destroyBody(body: unknown): void {
  if (body instanceof Readable) body.destroy();
}
