// The stable error codes of slipway. Codes travel over the wire and appear at the start of
// CLI error lines; messages are for people. docs/errors.md documents every code and a unit
// test (test/unit/shared/errors.test.ts) keeps that table and this one in step.
//
// `retryable` says whether the same request may succeed later unchanged (a coordinator may
// place a refused dyno elsewhere, or retry a download), not whether the agent retries itself.
//
// `httpStatus` is what an HTTP API answers with the code, one status per code; codes that
// travel only over the WebSocket carry the status an HTTP front would use. The HTTP servers
// (agent/diagnostics/server.ts, coordinator/http-json.ts for the API and the dev router, the
// SDK's upgrade refusals) take the status from here, never beside the code. The rule behind
// each status is in docs/errors.md: 4xx the caller can fix its request, 5xx it cannot.

export const ERROR_CODES = {
  // Protocol: a message the receiver could not accept.
  PROTOCOL_INVALID_JSON: { retryable: false, httpStatus: 400, summary: 'The frame, or an API request body, was not valid JSON.' },
  PROTOCOL_UNKNOWN_TYPE: { retryable: false, httpStatus: 400, summary: 'The message type is not known to the receiver.' },
  PROTOCOL_SCHEMA_VIOLATION: { retryable: false, httpStatus: 422, summary: 'The message, or an API request body or path parameter, does not match the schema of its type.' },
  PROTOCOL_VERSION_UNSUPPORTED: { retryable: false, httpStatus: 400, summary: 'The peer speaks a protocol version this side does not.' },
  PROTOCOL_NOT_READY: { retryable: true, httpStatus: 503, summary: 'A command arrived before the hello/welcome exchange finished.' },
  AUTH_INVALID_TOKEN: { retryable: false, httpStatus: 401, summary: "The bearer token (on the WebSocket upgrade, to the coordinator's API or to the diagnostics endpoint) was missing or wrong." },
  // Admission and dyno lifecycle.
  INSUFFICIENT_CAPACITY: { retryable: true, httpStatus: 503, summary: "The dyno's memory quota does not fit the host's free allocatable memory (the design's insufficient_capacity)." },
  HOST_DRAINING: { retryable: true, httpStatus: 503, summary: 'The host is draining and accepts no new dynos.' },
  STATE_DIR_FULL: { retryable: true, httpStatus: 507, summary: "The agent's state dir has less free space than its floor (stateDirFloorMb), or a write into it failed with ENOSPC/EDQUOT: no new dynos until there is room again." },
  STATE_DIR_FAILING: { retryable: true, httpStatus: 503, summary: "A write into the agent's state dir failed with EIO/EROFS or hangs: no new dynos until a write succeeds again." },
  AGENT_FD_LIMIT: { retryable: true, httpStatus: 503, summary: 'The agent has fewer file descriptors left under its RLIMIT_NOFILE than its headroom (fdHeadroom): no new dynos until descriptors are free or the limit is raised.' },
  DYNO_ALREADY_EXISTS: { retryable: false, httpStatus: 409, summary: 'A dyno with this id already exists on the host with a different spec.' },
  DYNO_NOT_FOUND: { retryable: false, httpStatus: 404, summary: "No dyno with this id runs on the host, or (the coordinator's API) the app has no dyno of this name." },
  DYNO_START_FAILED: { retryable: true, httpStatus: 502, summary: 'The runtime failed to start the dyno.' },
  NO_FREE_PORT: { retryable: true, httpStatus: 503, summary: 'The host has no free port left in its dyno port range.' },
  NO_FREE_ADDRESS: { retryable: true, httpStatus: 503, summary: 'The host has no free address left in its dyno subnet.' },
  NETWORK_FAILED: { retryable: true, httpStatus: 502, summary: "The host could not set up or tear down a dyno's network namespace, veth or netfilter entry." },
  DYNO_CRASHED: { retryable: true, httpStatus: 502, summary: 'The dyno process exited without being asked to stop.' },
  DYNO_BOOT_TIMEOUT: { retryable: true, httpStatus: 504, summary: "Heroku's R10: a web dyno did not accept connections on $PORT within the boot timeout." },
  DYNO_STOP_TIMEOUT: { retryable: false, httpStatus: 504, summary: "Heroku's R12: the dyno did not exit within the grace period after SIGTERM and was killed." },
  DYNO_OOM_KILLED: { retryable: true, httpStatus: 502, summary: "The kernel OOM-killed a process of the dyno (cgroup OOM counter), Heroku's R15." },
  DYNO_MEMORY_EXCEEDED: { retryable: true, httpStatus: 502, summary: "Heroku's R15: the dyno's working set and swap reached the configured multiple of its memory quota; it was killed and is restarted." },
  STACK_NOT_FOUND: { retryable: false, httpStatus: 404, summary: 'The requested stack is not installed on the host.' },
  STACK_EXISTS: { retryable: false, httpStatus: 409, summary: 'A stack of that name is already installed; import it with --force to replace it.' },
  STACK_IN_USE: { retryable: true, httpStatus: 409, summary: 'The stack is the root filesystem of running dynos and cannot be replaced now.' },
  STACK_INVALID: { retryable: false, httpStatus: 422, summary: 'A stack archive or directory is unreadable, unsafe, or lacks /bin/sh.' },
  // Slugs.
  SLUG_FETCH_FAILED: { retryable: true, httpStatus: 502, summary: 'The slug could not be downloaded.' },
  SLUG_NOT_FOUND: { retryable: false, httpStatus: 404, summary: 'The slug source answered that the slug does not exist (404).' },
  SLUG_FORBIDDEN: { retryable: false, httpStatus: 502, summary: 'The slug source refused access (401/403).' },
  SLUG_CHECKSUM_MISMATCH: { retryable: false, httpStatus: 422, summary: "The downloaded slug's SHA-256 differs from the expected one." },
  SLUG_UNSUPPORTED_SOURCE: { retryable: false, httpStatus: 422, summary: 'The slug URL scheme is not supported.' },
  SLUG_CORRUPT: { retryable: false, httpStatus: 422, summary: 'The slug is not a readable gzipped tar.' },
  SLUG_UNSAFE_PATH: { retryable: false, httpStatus: 422, summary: 'A slug entry would land outside the slug root.' },
  SLUG_UNSAFE_ENTRY: { retryable: false, httpStatus: 422, summary: 'A slug entry has a forbidden type (link out of the root, device, FIFO, ...).' },
  SLUG_TOO_LARGE: { retryable: false, httpStatus: 422, summary: 'The slug breaks a budget: compressed or unpacked bytes, expansion ratio, entry count, depth or name length.' },
  SLUG_UNSIGNED: { retryable: false, httpStatus: 422, summary: 'The host requires signed slugs (requireSignedSlugs) and the slug reference carries no signature.' },
  SLUG_SIGNATURE_INVALID: { retryable: false, httpStatus: 422, summary: "The slug's minisign signature does not verify against a trusted key of the host (unreadable, made with a key that is not trusted, over other bytes, or with an altered trusted comment)." },
  SLUG_DISK_FULL: { retryable: true, httpStatus: 507, summary: 'The slug cache cannot fit the slug above its free-space floor, even after evicting unused slugs.' },
  // Runtime.
  RUNTIME_TIMEOUT: { retryable: true, httpStatus: 504, summary: 'A call into the container runtime did not finish within its bound.' },
  RUNTIME_FAILED: { retryable: true, httpStatus: 502, summary: 'A call into the container runtime failed.' },
  RUNTIME_UNAVAILABLE: { retryable: true, httpStatus: 503, summary: 'The configured container runtime is not installed or not answering (e.g. the Docker engine is down).' },
  RUNTIME_ATTACH_UNAVAILABLE: { retryable: false, httpStatus: 409, summary: "The dyno's stdio cannot be attached: it was not started attached by this agent process (a recovered dyno's streams went with the process that started it)." },
  RUNTIME_TTY_UNSUPPORTED: { retryable: false, httpStatus: 422, summary: "This host's container runtime cannot give a dyno a terminal (LXC through conmon); run without -t, or on a runc or Docker host." },
  // EC2 instance metadata (IMDSv2, agent/host/ec2/imds.ts).
  IMDS_UNAVAILABLE: { retryable: true, httpStatus: 502, summary: 'The EC2 instance metadata service refused the request, answered with an unexpected status, or could not be reached.' },
  IMDS_TIMEOUT: { retryable: true, httpStatus: 504, summary: 'The EC2 instance metadata service did not answer within its bound (1-2 s).' },
  IMDS_BAD_RESPONSE: { retryable: true, httpStatus: 502, summary: 'The EC2 instance metadata service answered with a body that is not what the path documents (bad JSON, a missing field, an unknown value).' },
  OCI_CONFIG_INVALID: { retryable: false, httpStatus: 500, summary: 'A generated OCI runtime config failed validation against the runtime-spec schema (a slipway bug); nothing was started.' },
  // HTTP: the request could not reach an endpoint's logic (the coordinator's API, the
  // diagnostics endpoint, the SDK's WebSocket upgrade).
  HTTP_NOT_FOUND: { retryable: false, httpStatus: 404, summary: 'No endpoint at this path (an unknown route, not an unknown dyno or app).' },
  HTTP_METHOD_NOT_ALLOWED: { retryable: false, httpStatus: 405, summary: 'The endpoint exists but not for this method; the Allow header names the methods it takes.' },
  HTTP_BODY_TOO_LARGE: { retryable: false, httpStatus: 413, summary: 'The request body exceeds the API bound (1 MiB, the size of one link frame).' },
  HTTP_BODY_NOT_ALLOWED: { retryable: false, httpStatus: 413, summary: 'The endpoint takes no request body (the diagnostics endpoint: GET only); the body is not read and the connection is closed.' },
  HTTP_HEADERS_TOO_LARGE: { retryable: false, httpStatus: 431, summary: 'The request headers exceed the bound of the endpoint, in bytes or in number (the diagnostics endpoint: 8 KiB, 32 headers).' },
  // Reference coordinator: API, agents and the dev router (Heroku's router codes in brackets).
  FORMATION_NOT_FOUND: { retryable: false, httpStatus: 404, summary: 'The app has no formation of this process type: scale and restart change formations that exist (create one with PUT /apps/:app/formation/:type).' },
  DRAIN_NOT_FOUND: { retryable: false, httpStatus: 404, summary: 'The app has no log drain with this id, token or URL.' },
  DRAIN_EXISTS: { retryable: false, httpStatus: 409, summary: 'The app already drains to this URL.' },
  DRAIN_LIMIT: { retryable: false, httpStatus: 409, summary: 'The app has as many log drains as an app may have (5): remove one first.' },
  SIZE_UNKNOWN: { retryable: false, httpStatus: 422, summary: 'The formation names a dyno size the coordinator does not know.' },
  APP_NOT_FOUND: { retryable: false, httpStatus: 404, summary: 'The router knows no app for this Host header, or the API no app of this name.' },
  ROUTER_NO_DYNOS: { retryable: true, httpStatus: 503, summary: 'The app has no dyno up to serve the request (H14).' },
  ROUTER_UPSTREAM_FAILED: { retryable: true, httpStatus: 502, summary: 'The dyno closed or refused the proxied request (H13).' },
  ROUTER_UPSTREAM_TIMEOUT: { retryable: true, httpStatus: 504, summary: 'The dyno did not answer within 30 s (H12).' },
  ROUTER_UNAVAILABLE: { retryable: true, httpStatus: 503, summary: "The HAProxy router (`--router haproxy`) is not running or its runtime API did not answer within its bound, so route changes could not be applied in time." },
  ROUTER_COMMAND_FAILED: { retryable: true, httpStatus: 502, summary: "HAProxy's runtime API or master CLI refused a command of the router (its answer is in the message), or a reload did not take." },
  AGENT_UNREACHABLE: { retryable: true, httpStatus: 503, summary: 'The agent has no live link to the coordinator, or it closed before answering.' },
  COMMAND_TIMEOUT: { retryable: true, httpStatus: 504, summary: 'The agent did not answer a command in time; the command may have run.' },
  COORDINATOR_SHUTTING_DOWN: { retryable: true, httpStatus: 503, summary: 'The coordinator is shutting down and takes no new agent links; come back after Retry-After.' },
  COORDINATOR_NOT_LEADER: { retryable: true, httpStatus: 503, summary: 'This coordinator is a follower (another one holds the leadership lock): it takes no agent links and no API writes; try the next coordinator URL, or this one after Retry-After.' },
  COORDINATOR_STALE_EPOCH: { retryable: false, httpStatus: 409, summary: 'A command came from a coordinator whose epoch is lower than one the agent was already welcomed with (a deposed leader): the agent refuses it.' },
  // The coordinator's store (coordinator/store/): PostgreSQL or in memory.
  STORE_FENCED: { retryable: false, httpStatus: 409, summary: "A state write carried an epoch that is no longer current: another coordinator became leader; nothing was written and this one steps down." },
  STORE_UNAVAILABLE: { retryable: true, httpStatus: 503, summary: "The coordinator's store (PostgreSQL) could not be reached or failed the statement." },
  STORE_SCHEMA_TOO_NEW: { retryable: false, httpStatus: 500, summary: "The database schema is at a later version than this coordinator knows (a newer coordinator migrated it): upgrade this coordinator." },
  // The on-call CLI (agent/cli/oncall/): `slipway-agent status|dynos|logs|why|doctor`.
  ATTACH_LEG_TAKEN: { retryable: false, httpStatus: 409, summary: "That leg of an attached one-off dyno's rendezvous is already connected: each secret admits one connection." },
  ATTACH_LOST: { retryable: false, httpStatus: 502, summary: "An attached one-off dyno's stream ended before its exit status came (the connection, the coordinator or the agent went away); the dyno is stopped." },
  COORDINATOR_UNREACHABLE: { retryable: true, httpStatus: 503, summary: "The developer CLI (`slipway`) could not reach the coordinator's API at its URL (refused, reset, no route, a TLS failure)." },
  COORDINATOR_TIMEOUT: { retryable: true, httpStatus: 504, summary: "The coordinator's API did not answer the developer CLI within the command's bound." },
  DIAGNOSTICS_UNREACHABLE: { retryable: true, httpStatus: 503, summary: "No agent answers at the diagnostics address (diagnosticsListen): the agent is not running, listens elsewhere, or the unix socket is not the caller's to open." },
  DIAGNOSTICS_TIMEOUT: { retryable: true, httpStatus: 504, summary: 'The agent accepted the connection to its diagnostics endpoint but did not answer within the bound (5 s).' },
  HOST_CHECK_FAILED: { retryable: true, httpStatus: 503, summary: '`slipway-agent doctor` found a check that fails on this host (each is a `fail` line of its output).' },
  // Configuration and internal.
  CONFIG_INVALID: { retryable: false, httpStatus: 422, summary: 'The configuration file or flags are invalid.' },
  INTERNAL: { retryable: true, httpStatus: 500, summary: 'An unexpected failure inside slipway; see its logs.' },
} as const satisfies Record<string, { retryable: boolean; httpStatus: number; summary: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(s: string): s is ErrorCode {
  return Object.hasOwn(ERROR_CODES, s);
}

/** The HTTP status an HTTP API answers with `code`. */
export function httpStatusOf(code: ErrorCode): number {
  return ERROR_CODES[code].httpStatus;
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
