// The HAProxy configuration and host map the router generates: pure functions of the route
// table, so a (re)start or a reload always loads the routes as they are now. Runtime-added
// servers vanish on a reload, which is why every current route is written in as a `server`.
//
// One frontend on the router's listen address; `Host` (port and trailing dot dropped, lower
// case) is looked up in the map file (`<app>.<hostDomain>` -> `app_<app>`); one backend per
// app that has had routes. The router's own answers are the dev router's, body for body
// (coordinator/http-json.ts sendError: `{error: {code, message, routerCode?}}`, the code's
// status): APP_NOT_FOUND 404 for a Host the map does not know, ROUTER_NO_DYNOS 503 (H14) for
// an app whose backend has no server in service, and HAProxy's own 502/504 replaced by
// ROUTER_UPSTREAM_FAILED (H13) / ROUTER_UPSTREAM_TIMEOUT (H12).
//
// Choices that make deploys and scale-downs drop nothing (the tests under
// test/integration/coordinator/haproxy/ show each):
// - `option http-server-close`: one connection to a dyno per request. A drained dyno then holds
//   no idle connection from the router once its last response is out, so its server.close()
//   after SIGTERM finishes at once, and a dyno's keep-alive timeout can never race a request
//   HAProxy sends on a connection the dyno is closing. The cost is a TCP handshake per request
//   on the hosts' network.
// - `retry-on conn-failure` (HAProxy's default, made explicit) with `option redispatch 1`: a
//   request that could not be sent (the dyno's port refuses: it crashed, or stopped listening
//   after SIGTERM before its route left an old worker) is retried on another dyno. Nothing was
//   sent, so nothing can run twice. Not `empty-response` or `response-timeout`: those replay a
//   request a dyno may have acted on (a POST), and Heroku's router does not replay either (H13).
// - `option idle-close-on-response`: on a reload the old worker does not close idle client
//   connections under the clients' feet (a client writing into a closing connection sees a
//   reset); it answers their next request with `Connection: close` instead, as before 2.4.
// - `hard-stop-after` bounds how long an old worker may live after a reload.
import { isIP } from 'node:net';
import { ERROR_CODES } from '../../shared/errors.js';

export interface HaproxyPaths {
  config: string;
  map: string;
  adminSocket: string;
  masterSocket: string;
}

export interface ServerSpec {
  /** The dyno id: unique within the app, unlike the dyno name (old and new web.1 overlap). */
  name: string;
  host: string;
  port: number;
}

export interface BackendSpec {
  app: string;
  servers: ServerSpec[];
}

export interface ConfigInput {
  paths: HaproxyPaths;
  listen: { host: string; port: number };
  hostDomain: string;
  /** H12: the bound on a dyno's answer, the dev router's upstreamTimeoutMs. */
  upstreamTimeoutMs: number;
  backends: BackendSpec[];
}

export interface MapEntry {
  host: string;
  backend: string;
}

/** Names that go into the config and into runtime API command lines as they are. App names
 * and dyno ids are narrower still (shared/protocol.ts AppName, DynoId). */
const SAFE_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const SAFE_DOMAIN = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;
const BACKEND_PREFIX = 'app_';
export const FRONTEND = 'slipway_router';

// Where the numbers come from: connect 5 s (a dyno reported 'up' only once its port accepted
// TCP, so a handshake on the hosts' network takes milliseconds; 5 s outlasts a congested
// link), the client side 60 s idle keep-alive and 10 s for a request's headers (slow clients
// must not hold connections), WebSocket tunnels 55 s idle (Heroku's router), old workers at
// most 120 s after a reload (longer than any request, which H12 bounds at 30 s by default).
const TIMEOUT_CONNECT = '5s';
const TIMEOUT_CLIENT = '60s';
const TIMEOUT_HTTP_REQUEST = '10s';
const TIMEOUT_KEEP_ALIVE = '60s';
const TIMEOUT_TUNNEL = '55s';
const HARD_STOP_AFTER = '120s';
/** Retries of a request that could not be sent, each on another dyno (redispatch 1). */
const RETRIES = 3;

export function isSafeName(name: string): boolean {
  return SAFE_NAME.test(name);
}

export function isSafeDomain(domain: string): boolean {
  return SAFE_DOMAIN.test(domain);
}

export function backendName(app: string): string {
  return `${BACKEND_PREFIX}${app}`;
}

/** The app of one of the router's backends, or undefined for any other backend. */
export function appOfBackend(backend: string): string | undefined {
  return backend.startsWith(BACKEND_PREFIX) ? backend.slice(BACKEND_PREFIX.length) : undefined;
}

export function appHost(app: string, hostDomain: string): string {
  return `${app}.${hostDomain}`;
}

/** `host:port` as HAProxy reads it (IPv6 in brackets), or undefined when `host` is not an IP
 * literal: a runtime-added server is never resolved (`init-addr none`), so a name could not
 * work the same before and after a reload. */
export function serverAddress(host: string, port: number): string | undefined {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  const family = isIP(bare);
  if (family === 0 || !Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return family === 6 ? `[${bare}]:${port}` : `${bare}:${port}`;
}

/** The map file: one `host backend` line per app with a backend. */
export function renderMap(entries: MapEntry[]): string {
  return entries.map((e) => `${e.host} ${e.backend}\n`).join('');
}

export function mapEntries(apps: Iterable<string>, hostDomain: string): MapEntry[] {
  return [...apps].sort().map((app) => ({ host: appHost(app, hostDomain), backend: backendName(app) }));
}

/** `{error: {code, message, ...extra}}` as sendError writes it, for a single-quoted HAProxy
 * word (the messages are ours and hold no quote). */
function errorBody(code: keyof typeof ERROR_CODES, message: string, extra: Record<string, string> = {}): string {
  return `'${JSON.stringify({ error: { code, message, ...extra } })}'`;
}

function errorStatus(code: keyof typeof ERROR_CODES): number {
  return ERROR_CODES[code].httpStatus;
}

const JSON_TYPE = '"application/json; charset=utf-8"';

export function renderConfig(input: ConfigInput): string {
  const { paths, hostDomain } = input;
  if (!isSafeDomain(hostDomain)) throw new Error(`unsafe host domain: ${hostDomain}`);
  const listen = serverAddress(input.listen.host, input.listen.port);
  if (!listen) throw new Error(`the router listens on an IP address: ${input.listen.host}:${input.listen.port}`);
  const domainRe = hostDomain.replace(/\./g, '[.]');
  const upstreamTimeout = `${Math.max(1, Math.round(input.upstreamTimeoutMs))}ms`;
  const lines = [
    '# Generated by the slipway coordinator (coordinator/haproxy/config.ts); rewritten on every',
    '# reload and restart. Route changes in between go through the runtime API.',
    'global',
    '    master-worker',
    // In master-worker mode the listeners also pass through the master's socket pairs;
    // expose-fd keeps a reload hitless for a manual `haproxy -x` too.
    `    stats socket ${paths.adminSocket} mode 600 level admin expose-fd listeners`,
    `    hard-stop-after ${HARD_STOP_AFTER}`,
    '',
    'defaults',
    '    mode http',
    '    option http-server-close',
    '    option idle-close-on-response',
    '    option redispatch 1',
    `    retries ${RETRIES}`,
    '    retry-on conn-failure',
    `    timeout connect ${TIMEOUT_CONNECT}`,
    `    timeout client ${TIMEOUT_CLIENT}`,
    `    timeout server ${upstreamTimeout}`,
    `    timeout http-request ${TIMEOUT_HTTP_REQUEST}`,
    `    timeout http-keep-alive ${TIMEOUT_KEEP_ALIVE}`,
    `    timeout tunnel ${TIMEOUT_TUNNEL}`,
    `    http-error status ${errorStatus('ROUTER_UPSTREAM_FAILED')} content-type ${JSON_TYPE} string ${errorBody('ROUTER_UPSTREAM_FAILED', 'a dyno failed the request', { routerCode: 'H13' })}`,
    `    http-error status ${errorStatus('ROUTER_UPSTREAM_TIMEOUT')} content-type ${JSON_TYPE} string ${errorBody('ROUTER_UPSTREAM_TIMEOUT', `the dyno did not answer within ${input.upstreamTimeoutMs} ms`, { routerCode: 'H12' })}`,
    '',
    `frontend ${FRONTEND}`,
    `    bind ${listen}`,
    '    http-request set-var(txn.host) req.hdr(host),field(1,:),lower,regsub([.]$,)',
    `    http-request set-var(txn.backend) var(txn.host),map(${paths.map})`,
    `    acl app_host var(txn.host) -m reg '^[a-z0-9-]+[.]${domainRe}$'`,
    '    acl mapped var(txn.backend) -m found',
    `    http-request return status ${errorStatus('APP_NOT_FOUND')} content-type ${JSON_TYPE} lf-string '{"error":{"code":"APP_NOT_FOUND","message":"no such app: %[var(txn.host),field(1,.),json(utf8s)]"}}' if !mapped app_host`,
    `    http-request return status ${errorStatus('APP_NOT_FOUND')} content-type ${JSON_TYPE} string ${errorBody('APP_NOT_FOUND', `the router serves Host: <app>.${hostDomain}`)} if !mapped`,
    // Heroku's request headers, as the dev router sets them.
    '    option forwardfor',
    '    http-request set-header X-Forwarded-Proto http',
    '    http-request set-header X-Forwarded-Port %[dst_port]',
    '    http-request set-header X-Request-Start %[date(0,ms)]',
    '    use_backend %[var(txn.backend)]',
  ];
  for (const backend of [...input.backends].sort((a, b) => (a.app < b.app ? -1 : a.app > b.app ? 1 : 0))) {
    if (!isSafeName(backend.app)) throw new Error(`unsafe app name: ${backend.app}`);
    const noDynos = errorBody('ROUTER_NO_DYNOS', `app ${backend.app} has no dyno up to serve the request`, { routerCode: 'H14' });
    lines.push(
      '',
      `backend ${backendName(backend.app)}`,
      // roundrobin: a dynamic algorithm, which `add server` requires.
      '    balance roundrobin',
      // nbsrv is 0 in an old worker after a reload (its backends are stopped) though their
      // servers still serve the last requests of its client connections: hence !stopping.
      // HAProxy's own 503 (every server drained at once) gets the same body.
      `    http-request return status ${errorStatus('ROUTER_NO_DYNOS')} content-type ${JSON_TYPE} string ${noDynos} if { nbsrv eq 0 } !{ stopping }`,
      `    http-error status ${errorStatus('ROUTER_NO_DYNOS')} content-type ${JSON_TYPE} string ${noDynos}`,
      // The dyno id (the dev router sends the dyno's name, which HAProxy does not know).
      '    http-response set-header X-Slipway-Dyno %[srv_name]',
    );
    for (const server of [...backend.servers].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const address = serverAddress(server.host, server.port);
      if (!isSafeName(server.name) || !address) continue;
      lines.push(`    server ${server.name} ${address}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
