// The stable error codes of slipway. Codes travel over the wire and appear at the start of
// CLI error lines; messages are for people. docs/errors.md documents every code and a unit
// test (test/unit/shared/errors.test.ts) keeps that table and this one in step.
//
// `retryable` says whether the same request may succeed later unchanged (a coordinator may
// place a refused dyno elsewhere, or retry a download), not whether the agent retries itself.

export const ERROR_CODES = {
  // Protocol: a message the receiver could not accept.
  PROTOCOL_INVALID_JSON: { retryable: false, summary: 'The frame was not valid JSON.' },
  PROTOCOL_UNKNOWN_TYPE: { retryable: false, summary: 'The message type is not known to the receiver.' },
  PROTOCOL_SCHEMA_VIOLATION: { retryable: false, summary: 'The message does not match the schema of its type.' },
  PROTOCOL_VERSION_UNSUPPORTED: { retryable: false, summary: 'The peer speaks a protocol version this side does not.' },
  PROTOCOL_NOT_READY: { retryable: true, summary: 'A command arrived before the hello/welcome exchange finished.' },
  AUTH_INVALID_TOKEN: { retryable: false, summary: 'The bearer token on the WebSocket upgrade was missing or wrong.' },
  // Admission and dyno lifecycle.
  INSUFFICIENT_CAPACITY: { retryable: true, summary: "The dyno's memory quota does not fit the host's free allocatable memory (the design's insufficient_capacity)." },
  HOST_DRAINING: { retryable: true, summary: 'The host is draining and accepts no new dynos.' },
  DYNO_ALREADY_EXISTS: { retryable: false, summary: 'A dyno with this id already exists on the host with a different spec.' },
  DYNO_NOT_FOUND: { retryable: false, summary: 'No dyno with this id runs on the host.' },
  DYNO_START_FAILED: { retryable: true, summary: 'The runtime failed to start the dyno.' },
  NO_FREE_PORT: { retryable: true, summary: 'The host has no free port left in its dyno port range.' },
  DYNO_CRASHED: { retryable: true, summary: 'The dyno process exited without being asked to stop.' },
  DYNO_BOOT_TIMEOUT: { retryable: true, summary: "Heroku's R10: a web dyno did not accept connections on $PORT within the boot timeout." },
  DYNO_STOP_TIMEOUT: { retryable: false, summary: "Heroku's R12: the dyno did not exit within the grace period after SIGTERM and was killed." },
  DYNO_OOM_KILLED: { retryable: true, summary: "The kernel OOM-killed a process of the dyno (cgroup OOM counter), Heroku's R15." },
  DYNO_MEMORY_EXCEEDED: { retryable: true, summary: "Heroku's R15: the dyno's working set and swap reached the configured multiple of its memory quota; it was killed and is restarted." },
  STACK_NOT_FOUND: { retryable: false, summary: 'The requested stack is not installed on the host.' },
  STACK_EXISTS: { retryable: false, summary: 'A stack of that name is already installed; import it with --force to replace it.' },
  STACK_IN_USE: { retryable: true, summary: 'The stack is the root filesystem of running dynos and cannot be replaced now.' },
  STACK_INVALID: { retryable: false, summary: 'A stack archive or directory is unreadable, unsafe, or lacks /bin/sh.' },
  // Slugs.
  SLUG_FETCH_FAILED: { retryable: true, summary: 'The slug could not be downloaded.' },
  SLUG_NOT_FOUND: { retryable: false, summary: 'The slug source answered that the slug does not exist (404).' },
  SLUG_FORBIDDEN: { retryable: false, summary: 'The slug source refused access (401/403).' },
  SLUG_CHECKSUM_MISMATCH: { retryable: false, summary: "The downloaded slug's SHA-256 differs from the expected one." },
  SLUG_UNSUPPORTED_SOURCE: { retryable: false, summary: 'The slug URL scheme is not supported.' },
  SLUG_CORRUPT: { retryable: false, summary: 'The slug is not a readable gzipped tar.' },
  SLUG_UNSAFE_PATH: { retryable: false, summary: 'A slug entry would land outside the slug root.' },
  SLUG_UNSAFE_ENTRY: { retryable: false, summary: 'A slug entry has a forbidden type (link out of the root, device, FIFO, ...).' },
  SLUG_TOO_LARGE: { retryable: false, summary: 'The slug breaks a budget: compressed or unpacked bytes, expansion ratio, entry count, depth or name length.' },
  SLUG_DISK_FULL: { retryable: true, summary: 'The slug cache cannot fit the slug above its free-space floor, even after evicting unused slugs.' },
  // Runtime.
  RUNTIME_TIMEOUT: { retryable: true, summary: 'A call into the container runtime did not finish within its bound.' },
  RUNTIME_FAILED: { retryable: true, summary: 'A call into the container runtime failed.' },
  RUNTIME_UNAVAILABLE: { retryable: true, summary: 'The configured container runtime is not installed or not answering (e.g. the Docker engine is down).' },
  OCI_CONFIG_INVALID: { retryable: false, summary: 'A generated OCI runtime config failed validation against the runtime-spec schema (a slipway bug); nothing was started.' },
  // Reference coordinator: API, agents and the dev router (Heroku's router codes in brackets).
  SIZE_UNKNOWN: { retryable: false, summary: 'The formation names a dyno size the coordinator does not know.' },
  API_NOT_FOUND: { retryable: false, summary: 'No API endpoint for this method and path.' },
  APP_NOT_FOUND: { retryable: false, summary: 'The router knows no app for this Host header.' },
  ROUTER_NO_DYNOS: { retryable: true, summary: 'The app has no dyno up to serve the request (H14).' },
  ROUTER_UPSTREAM_FAILED: { retryable: true, summary: 'The dyno closed or refused the proxied request (H13).' },
  ROUTER_UPSTREAM_TIMEOUT: { retryable: true, summary: 'The dyno did not answer within 30 s (H12).' },
  AGENT_UNREACHABLE: { retryable: true, summary: 'The agent has no live link to the coordinator, or it closed before answering.' },
  COMMAND_TIMEOUT: { retryable: true, summary: 'The agent did not answer a command in time; the command may have run.' },
  // Configuration and internal.
  CONFIG_INVALID: { retryable: false, summary: 'The configuration file or flags are invalid.' },
  INTERNAL: { retryable: true, summary: 'An unexpected failure inside slipway; see its logs.' },
} as const satisfies Record<string, { retryable: boolean; summary: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(s: string): s is ErrorCode {
  return Object.hasOwn(ERROR_CODES, s);
}

/** An error with a stable code, a retry flag and the cause attached. */
export class SlipwayError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  /** When the other side said when to come back (HTTP Retry-After, S3 SlowDown), in ms. */
  readonly retryAfterMs: number | undefined;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; retryable?: boolean; retryAfterMs?: number } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SlipwayError';
    this.code = code;
    this.retryable = options.retryable ?? ERROR_CODES[code].retryable;
    this.retryAfterMs = options.retryAfterMs;
  }

  toWire(): { code: ErrorCode; message: string; retryable: boolean } {
    return { code: this.code, message: this.message, retryable: this.retryable };
  }
}

/** Any thrown value as a SlipwayError; unknown failures become INTERNAL with the cause kept. */
export function asSlipwayError(err: unknown): SlipwayError {
  if (err instanceof SlipwayError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new SlipwayError('INTERNAL', message, { cause: err });
}
