// An IMDSv2 client on Node's global fetch: the agent's only way to the EC2 instance metadata
// service (its identity, agent/host/ec2/identity.ts; the signals that the host is going away,
// host-signals.ts).
//
// Why not `@aws-sdk/ec2-metadata-service`: measured for issue 13, it has no default timeout (a
// request to an endpoint that accepts and never answers hung), it fetches a new token for every
// request, it falls back to IMDSv1 silently when the token PUT fails, and it surfaces a 404 (the
// normal "no spot notice" answer, polled every 5 s) as an error. Each of those is wrong for an
// agent that polls on every host of the fleet: a hung poll misses a 2-minute spot deadline, a
// token per request doubles the traffic, IMDSv1 is what hardened instances refuse
// (HttpTokens=required) and what a compromised dyno would talk to. This client is ~150 lines:
//
// - one token (PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds), cached and
//   renewed TOKEN_RENEW_BEFORE_MS before it expires (monotonic time: an NTP step does not
//   expire it early or keep it past its life), and renewed once more when a GET answers 401
//   (the service restarted, or the token was revoked);
// - every request bounded (AbortSignal.timeout: TOKEN_TIMEOUT_MS, REQUEST_TIMEOUT_MS), the body
//   read included;
// - never a request without the token header: no IMDSv1, ever;
// - 404 is "absent" (undefined), not an error;
// - the endpoint is configurable (`ec2.endpoint`; the tests' fake on loopback).
import { performance } from 'node:perf_hooks';
import { SlipwayError } from '../../../shared/errors.js';

/** The IPv4 endpoint of the instance metadata service (the IPv6 one, fd00:ec2::254, only
 * answers on Nitro instances with the IPv6 endpoint enabled). */
export const IMDS_DEFAULT_ENDPOINT = 'http://169.254.169.254';
/** Token life asked for: 6 h, the service's maximum; one PUT per agent every ~6 h. */
export const TOKEN_TTL_SECONDS = 21_600;
/** A token is renewed this long before it expires, so that no request carries a token that
 * expires on its way (the service's clock and ours differ by the PUT's round trip). */
export const TOKEN_RENEW_BEFORE_MS = 60_000;
/** The service answers from the hypervisor in well under 10 ms (AWS documents no figure; a
 * healthy instance answers in ~1 ms). 1 s for the token and 1.5 s for a GET bound a silent or
 * throttled service (it throttles per instance at a few hundred requests a second) while
 * keeping a spot poll, three GETs in parallel, well inside its 5 s period. */
export const TOKEN_TIMEOUT_MS = 1_000;
export const REQUEST_TIMEOUT_MS = 1_500;
/** Metadata values are short (the identity document is ~500 bytes); a bigger body is not IMDS. */
export const MAX_BODY_BYTES = 64 * 1024;

export interface ImdsClientOptions {
  /** `http://169.254.169.254` by default; tests give their fake's loopback URL. */
  endpoint?: string;
  ttlSeconds?: number;
  tokenTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** Monotonic milliseconds (tests step it to expire the token). */
  now?: () => number;
}

export class ImdsClient {
  readonly endpoint: string;
  private token: { value: string; expiresAt: number } | undefined;
  /** One PUT at a time: concurrent GETs wait for the same token. */
  private pending: Promise<string> | undefined;
  private readonly ttlSeconds: number;
  private readonly tokenTimeoutMs: number;
  private readonly requestTimeoutMs: number;
  private readonly now: () => number;

  constructor(o: ImdsClientOptions = {}) {
    this.endpoint = (o.endpoint ?? IMDS_DEFAULT_ENDPOINT).replace(/\/+$/, '');
    this.ttlSeconds = o.ttlSeconds ?? TOKEN_TTL_SECONDS;
    this.tokenTimeoutMs = o.tokenTimeoutMs ?? TOKEN_TIMEOUT_MS;
    this.requestTimeoutMs = o.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
    this.now = o.now ?? (() => performance.now());
  }

  /** Whether a token PUT succeeds within `timeoutMs`: the probe of `ec2.enabled: 'auto'`. The
   * token it gets is kept. */
  async probe(timeoutMs = this.tokenTimeoutMs): Promise<boolean> {
    try {
      await this.fetchToken(timeoutMs);
      return true;
    } catch {
      return false;
    }
  }

  /** The text at `path` (`/latest/meta-data/instance-id`), or undefined when the service
   * answers 404 (absent: no spot notice, not in an Auto Scaling group). Throws SlipwayError
   * IMDS_TIMEOUT or IMDS_UNAVAILABLE. */
  async get(path: string): Promise<string | undefined> {
    let res = await this.request(path, await this.currentToken());
    if (res.status === 401) {
      // The token is no longer valid (the service restarted, or it expired early): one new
      // token, one more try, never a request without one.
      this.token = undefined;
      res = await this.request(path, await this.currentToken());
    }
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw new SlipwayError('IMDS_UNAVAILABLE', `instance metadata ${path} answered ${res.status}`);
    return res.body;
  }

  /** JSON at `path`, undefined when absent; a body that is not JSON is IMDS_BAD_RESPONSE. */
  async getJson(path: string): Promise<unknown> {
    const text = await this.get(path);
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new SlipwayError('IMDS_BAD_RESPONSE', `instance metadata ${path} is not JSON (${text.length} bytes)`, { cause: err });
    }
  }

  private async currentToken(): Promise<string> {
    if (this.token && this.now() < this.token.expiresAt - TOKEN_RENEW_BEFORE_MS) return this.token.value;
    this.pending ??= this.fetchToken(this.tokenTimeoutMs).finally(() => { this.pending = undefined; });
    return this.pending;
  }

  private async fetchToken(timeoutMs: number): Promise<string> {
    const asked = this.now();
    const res = await this.send('/latest/api/token', { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': String(this.ttlSeconds) } }, timeoutMs);
    if (res.status !== 200 || res.body.trim() === '') {
      throw new SlipwayError('IMDS_UNAVAILABLE', `instance metadata token request answered ${res.status}`);
    }
    // The life runs from when it was asked for: the service counts from its answer, later.
    this.token = { value: res.body.trim(), expiresAt: asked + this.ttlSeconds * 1000 };
    return this.token.value;
  }

  private request(path: string, token: string): Promise<{ status: number; body: string }> {
    return this.send(path, { method: 'GET', headers: { 'x-aws-ec2-metadata-token': token } }, this.requestTimeoutMs);
  }

  private async send(path: string, init: { method: string; headers: Record<string, string> }, timeoutMs: number): Promise<{ status: number; body: string }> {
    const url = `${this.endpoint}${path}`;
    try {
      // The signal bounds the body read too; redirects are no part of the service.
      const res = await fetch(url, { ...init, redirect: 'error', signal: AbortSignal.timeout(timeoutMs) });
      const body = await res.text();
      if (Buffer.byteLength(body) > MAX_BODY_BYTES) throw new SlipwayError('IMDS_BAD_RESPONSE', `instance metadata ${path} answered ${Buffer.byteLength(body)} bytes`);
      return { status: res.status, body };
    } catch (err) {
      if (err instanceof SlipwayError) throw err;
      const name = (err as { name?: string }).name;
      if (name === 'TimeoutError' || name === 'AbortError') {
        throw new SlipwayError('IMDS_TIMEOUT', `instance metadata ${init.method} ${path} did not answer within ${timeoutMs} ms`, { cause: err });
      }
      throw new SlipwayError('IMDS_UNAVAILABLE', `instance metadata ${init.method} ${path} failed: ${(err as Error).message}`, { cause: err });
    }
  }
}
