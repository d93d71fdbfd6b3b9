// When a failed slug download is tried again. Only transient failures are retried
// (SLUG_FETCH_FAILED marked retryable: 5xx, resets, stalls); 403/404, checksum mismatches,
// corrupt or unsafe slugs never are. Capped exponential backoff with equal jitter; a
// Retry-After from the source is honoured up to RETRY_AFTER_CAP_MS. Pure, for unit tests.
import type { SlipwayError } from '../../shared/errors.js';

export interface RetryPolicy {
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

/** 5 attempts over ~1+2+4+8 s (jittered) ride out a load balancer restart or an S3 blip
 * without holding a dyno start for minutes; the coordinator may place it elsewhere after. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = { attempts: 5, baseDelayMs: 1_000, maxDelayMs: 30_000 };
/** A source asking for more than a minute is treated as down: we do not wait that long. */
export const RETRY_AFTER_CAP_MS = 60_000;

export function isRetryable(err: SlipwayError): boolean {
  return err.code === 'SLUG_FETCH_FAILED' && err.retryable;
}

/** Delay before attempt `attempt + 1` (attempt counts from 1), or undefined for no retry. */
export function retryDelayMs(attempt: number, err: SlipwayError, policy: RetryPolicy, random: () => number = Math.random): number | undefined {
  if (!isRetryable(err) || attempt >= policy.attempts) return undefined;
  const base = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  const jittered = Math.round(base / 2 + random() * (base / 2));
  if (err.retryAfterMs !== undefined) return Math.min(RETRY_AFTER_CAP_MS, Math.max(jittered, err.retryAfterMs));
  return jittered;
}

/** Parses an HTTP Retry-After header (seconds or an HTTP date) into ms from `now`. Wall time
 * on purpose: an HTTP date is on the server's wall clock; the delay is then waited on a timer. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
