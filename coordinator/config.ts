// The coordinator's configuration: what `slipway-coordinator serve` parses from its flags and
// what startCoordinator() wires from. Plain data, no I/O beyond reading the files named.
import { readFileSync } from 'node:fs';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { DynoSize, StackName } from '../shared/protocol.js';
import { DEFAULT_SIZES } from '../shared/sizes.js';
import { SlipwayError } from '../shared/errors.js';
import { parseApiTokens } from './api-tokens.js';

export interface ListenAddress {
  host: string;
  port: number;
}

/** Timing knobs. Defaults carry the numbers' origins; tests shorten them. */
export interface CoordinatorTiming {
  /** Ping period of each agent link; two missed pongs close it (so a dead link lives <= 45 s). */
  pingIntervalMs: number;
  /** Bound on an agent's answer to a command. The agent answers right after admission, not
   * when the dyno is up, so 30 s is generous even for a loaded host. */
  commandTimeoutMs: number;
  /** Router: time to the first byte of an upstream response (Heroku's H12 is 30 s). */
  upstreamTimeoutMs: number;
  /** A follower tries the leadership lock this often (the takeover delay once the leader's
   * session ended). */
  leaderRetryMs: number;
  /** PostgreSQL ends the leader's lock session after this long without a heartbeat (its
   * idle_session_timeout): a leader stopped (SIGSTOP, a VM pause) for longer loses the lock
   * and a follower takes over. The heartbeat runs at a quarter of it. */
  leaderSessionTimeoutMs: number;
}

export const DEFAULT_TIMING: Readonly<CoordinatorTiming> = Object.freeze({
  pingIntervalMs: 15_000,
  commandTimeoutMs: 30_000,
  upstreamTimeoutMs: 30_000,
  leaderRetryMs: 250,
  leaderSessionTimeoutMs: 5_000,
});

/** Where the coordinator keeps its state: in memory (one coordinator; the demo's default) or
 * in PostgreSQL (several coordinators, one leader). */
export type StoreConfig = { kind: 'memory' } | { kind: 'postgres'; url: string };

/** Which router serves the apps: the dev router (Node, the demo's default) or HAProxy 2.6
 * driven through its runtime API. */
export type RouterKind = 'dev' | 'haproxy';

export interface CoordinatorConfig {
  /** API and agent WebSocket listener. */
  listen: ListenAddress;
  /** Dev HTTP router listener. */
  routerListen: ListenAddress;
  /** Bearer token every agent must present on the upgrade. A secret: never logged. */
  token: string;
  /** Bearer tokens of the API's users (api-tokens.ts): app developers, operators, the
   * developer CLI. Not the agents' token. Secrets: never logged. At least one. */
  apiTokens: readonly string[];
  /** Sent in welcome; tells an agent which coordinator instance it talks to. */
  coordinatorId: string;
  /** Stack used when a formation does not name one. */
  defaultStack: string;
  /** Size name -> limits sent in start_dyno. */
  sizes: Readonly<Record<string, DynoSize>>;
  timing: CoordinatorTiming;
  /** Default: memory. */
  store?: StoreConfig;
  /** Default: dev. */
  router?: RouterKind;
  /** HAProxy's config, map, admin socket and pid file (with router 'haproxy'). */
  routerWorkDir?: string;
  /** TLS for the API and agent listener (agents then dial wss://); with clientCa, agents must
   * present a client certificate that chains to it (mutual TLS). PEM text. */
  tls?: { cert: string; key: string; clientCa?: string };
  /** PEM of CAs the log drains trust besides the system's (a private log service). */
  drainCa?: string;
}

export const DEFAULT_LISTEN = '127.0.0.1:7700';
export const DEFAULT_ROUTER_LISTEN = '127.0.0.1:7780';
export const DEFAULT_STACK = 'busybox';

/** Parses `HOST:PORT`, `[v6]:PORT` or `:PORT` (which means loopback, the safe default). */
export function parseListenAddress(raw: string, flag: string): ListenAddress {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(raw);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new SlipwayError('CONFIG_INVALID', `${flag} must be HOST:PORT, got ${JSON.stringify(raw)}`);
  const host = m[1] ?? m[2] ?? '';
  return { host: host === '' ? '127.0.0.1' : host, port };
}

/** A URL for a listening address; IPv6 hosts are bracketed. */
export function formatUrl(scheme: string, address: ListenAddress, path = ''): string {
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return `${scheme}://${host}:${address.port}${path}`;
}

const checkStack = TypeCompiler.Compile(StackName);
export function validateStackName(name: string, flag: string): string {
  if (!checkStack.Check(name)) throw new SlipwayError('CONFIG_INVALID', `${flag} is not a valid stack name: ${JSON.stringify(name)}`);
  return name;
}

/** Reads a PEM file named by a flag. */
export function readPemFile(path: string, flag: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new SlipwayError('CONFIG_INVALID', `cannot read ${flag} ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (!text.includes('-----BEGIN ')) throw new SlipwayError('CONFIG_INVALID', `${flag} ${path} holds no PEM block`);
  return text;
}

/** Reads a token file; surrounding whitespace (a trailing newline) is not part of the token. */
export function readTokenFile(path: string): string {
  return readSecretFile(path, '--token-file');
}

/** Reads an API token file: one token per line (api-tokens.ts). */
export function readApiTokenFile(path: string): string[] {
  return parseApiTokens(readSecretFile(path, '--api-token-file'), `--api-token-file ${path}`);
}

/** Reads a file holding one secret (a token, a database URL with its password), trimmed. */
export function readSecretFile(path: string, flag: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new SlipwayError('CONFIG_INVALID', `cannot read ${flag} ${path}: ${(err as Error).message}`, { cause: err });
  }
  return text.trim();
}

const checkSize = TypeCompiler.Compile(DynoSize);
/** Reads a JSON object of size name -> DynoSize that replaces the default table. */
export function readSizesFile(path: string): Record<string, DynoSize> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new SlipwayError('CONFIG_INVALID', `cannot read --sizes-file ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new SlipwayError('CONFIG_INVALID', `--sizes-file ${path} must hold a JSON object of size name -> size`);
  }
  const sizes = Object.create(null) as Record<string, DynoSize>;
  for (const [name, size] of Object.entries(parsed)) {
    if (!checkSize.Check(size) || size.name !== name) {
      throw new SlipwayError('CONFIG_INVALID', `--sizes-file ${path}: size ${JSON.stringify(name)} is invalid or its name differs from its key`);
    }
    sizes[name] = size;
  }
  if (Object.keys(sizes).length === 0) throw new SlipwayError('CONFIG_INVALID', `--sizes-file ${path} defines no sizes`);
  return sizes;
}

export { DEFAULT_SIZES };
