// WebSocket close codes and the "come back later" convention both sides of the link use.
//
// A coordinator that restarts, or sheds load, may tell an agent when to redial: the close
// reason (or a refused upgrade's Retry-After header) carries `retry-after-ms=N`. The agent
// then redials after about N ms instead of its own backoff, so a coordinator can spread a
// fleet's reconnects over time instead of taking them all in the same second.

/** RFC 6455 codes. */
export const CLOSE_GOING_AWAY = 1001;
/** A flood of messages or fragments: the peer broke the link's limits. */
export const CLOSE_POLICY_VIOLATION = 1008;
/** A frame over MAX_FRAME_BYTES (ws closes with it on its own when maxPayload is exceeded). */
export const CLOSE_MESSAGE_TOO_BIG = 1009;
/** The coordinator is restarting; the reason names when to come back. */
export const CLOSE_SERVICE_RESTART = 1012;
/** The coordinator is overloaded; the reason names when to come back. */
export const CLOSE_TRY_AGAIN_LATER = 1013;

/** Application codes (4000-4999). */
export const CLOSE_REPLACED = 4000;
export const CLOSE_PROTOCOL_UNSUPPORTED = 4001;
export const CLOSE_NO_HELLO = 4002;
/** Sent by the agent: the welcome's epoch is below one it was welcomed with (a deposed leader). */
export const CLOSE_STALE_EPOCH = 4003;

/** No coordinator may park an agent for longer than the agent's own backoff cap. */
export const MAX_RETRY_AFTER_MS = 120_000;

/** A close reason that names when to redial (a close reason is at most 123 bytes). */
export function retryAfterReason(text: string, ms: number): string {
  return `${text.slice(0, 80)}; retry-after-ms=${Math.max(0, Math.round(ms))}`;
}

/** The redial time a close reason names, capped at MAX_RETRY_AFTER_MS; undefined when none. */
export function retryAfterFromReason(reason: string): number | undefined {
  const m = /(?:^|[;\s])retry-after-ms=(\d{1,9})(?:$|[;\s])/.exec(reason);
  return m ? Math.min(Number(m[1]), MAX_RETRY_AFTER_MS) : undefined;
}

/** The redial time an HTTP Retry-After header (delta seconds) names, capped; undefined when none. */
export function retryAfterFromHeader(value: string | string[] | undefined): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || !/^\s*\d{1,6}\s*$/.test(v)) return undefined;
  return Math.min(Number(v) * 1000, MAX_RETRY_AFTER_MS);
}
