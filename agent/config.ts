// The agent's configuration: a JSON file (--config, default /etc/slipway/agent.json when it
// exists), then command-line flags, then environment for secrets. Validated as a whole;
// a bad file is a CONFIG_INVALID error naming the field, never a crash later.
import { existsSync, readFileSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { SlipwayError } from '../shared/errors.js';
import { DEFAULT_RESTART_POLICY, type RestartPolicyOptions } from './dynos/restart-policy.js';
import { DEFAULT_MEMORY_SETTINGS } from './dynos/memory-policy.js';
import { UNKNOWN_DYNO_GRACE_MS } from './link/convergence.js';

export const DEFAULT_CONFIG_PATH = '/etc/slipway/agent.json';

const FileConfig = Type.Object({
  agentId: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._-]{1,128}$' })),
  coordinatorUrl: Type.Optional(Type.String({ pattern: '^wss?://' })),
  tokenFile: Type.Optional(Type.String({ minLength: 1 })),
  caFile: Type.Optional(Type.String({ minLength: 1 })),
  stateDir: Type.Optional(Type.String({ pattern: '^/' })),
  address: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  cgroupParent: Type.Optional(Type.String({ pattern: '^/[A-Za-z0-9._/-]*$' })),
  runtime: Type.Optional(Type.Union([Type.Literal('runc'), Type.Literal('lxc'), Type.Literal('docker')])),
  dockerSocket: Type.Optional(Type.String({ pattern: '^/' })),
  reservedMemoryMb: Type.Optional(Type.Integer({ minimum: 0 })),
  portRange: Type.Optional(Type.Tuple([Type.Integer({ minimum: 1, maximum: 65535 }), Type.Integer({ minimum: 1, maximum: 65535 })])),
  dynoUser: Type.Optional(Type.Object({ uid: Type.Integer({ minimum: 1 }), gid: Type.Integer({ minimum: 1 }) }, { additionalProperties: false })),
  bootTimeoutMs: Type.Optional(Type.Integer({ minimum: 100 })),
  stopGraceMs: Type.Optional(Type.Integer({ minimum: 0 })),
  nofile: Type.Optional(Type.Integer({ minimum: 64 })),
  restarts: Type.Optional(Type.Object({
    baseMs: Type.Optional(Type.Integer({ minimum: 0 })),
    capMs: Type.Optional(Type.Integer({ minimum: 0 })),
    stableAfterMs: Type.Optional(Type.Integer({ minimum: 0 })),
    jitter: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  }, { additionalProperties: false })),
  cycling: Type.Optional(Type.Object({
    enabled: Type.Optional(Type.Boolean()),
    periodMs: Type.Optional(Type.Integer({ minimum: 1000 })),
    jitterMs: Type.Optional(Type.Integer({ minimum: 0 })),
  }, { additionalProperties: false })),
  memory: Type.Optional(Type.Object({
    r15Multiple: Type.Optional(Type.Number({ minimum: 1, maximum: 16 })),
    r14IntervalMs: Type.Optional(Type.Integer({ minimum: 0 })),
    sampleMs: Type.Optional(Type.Integer({ minimum: 100 })),
  }, { additionalProperties: false })),
  link: Type.Optional(Type.Object({
    unknownDynoGraceMs: Type.Optional(Type.Integer({ minimum: 0 })),
    clientCertFile: Type.Optional(Type.String({ minLength: 1 })),
    clientKeyFile: Type.Optional(Type.String({ minLength: 1 })),
  }, { additionalProperties: false })),
  diagnosticsListen: Type.Optional(Type.String({ pattern: '^(127\\.[0-9.]+|localhost|\\[::1\\]):[0-9]{1,5}$' })),
  diagnosticsTokenFile: Type.Optional(Type.String({ minLength: 1 })),
  logLevel: Type.Optional(Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace'].map((l) => Type.Literal(l)))),
  slugCacheBudgetMb: Type.Optional(Type.Integer({ minimum: 1 })),
  slugCacheFloorMb: Type.Optional(Type.Integer({ minimum: 0 })),
  s3: Type.Optional(Type.Object({
    region: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    endpoint: Type.Optional(Type.String({ pattern: '^https?://' })),
    forcePathStyle: Type.Optional(Type.Boolean()),
  }, { additionalProperties: false })),
}, { additionalProperties: false });
export type FileConfig = Static<typeof FileConfig>;
const checkFileConfig = TypeCompiler.Compile(FileConfig);

export interface AgentConfig {
  agentId: string;
  coordinatorUrl: string;
  token: string;
  ca: string | undefined;
  stateDir: string;
  address: string;
  cgroupParent: string;
  /** The container runtime of this host: runc (default), lxc or docker. */
  runtime: 'runc' | 'lxc' | 'docker';
  dockerSocket: string | undefined;
  reservedMemoryMb: number;
  portRange: [number, number];
  /** uid/gid dynos run as: a dedicated id no host account uses (no user namespace yet, so
   * it is the same id on the host). The busybox stack's /etc/passwd names it `dyno`. */
  dynoUser: { uid: number; gid: number };
  bootTimeoutMs: number;
  stopGraceMs: number;
  nofile: number;
  /** Crash restart backoff (agent/dynos/restart-policy.ts). */
  restarts: RestartPolicyOptions;
  /** Heroku's daily cycling: every dyno restarted after periodMs + random(jitterMs). */
  cycling: { enabled: boolean; periodMs: number; jitterMs: number };
  /** R14/R15 (agent/dynos/memory-policy.ts) and how often dynos are sampled. */
  memory: { r15Multiple: number; r14IntervalMs: number; sampleMs: number };
  /** The coordinator link beyond URL, token and CA (agent/link/). */
  link: {
    /** How long a dyno the coordinator's desired set does not list keeps running (convergence.ts). */
    unknownDynoGraceMs: number;
    /** Client certificate for a coordinator that requires mutual TLS. */
    clientCert: { cert: string; key: string } | undefined;
  };
  diagnosticsListen: string;
  diagnosticsTokenFile: string;
  logLevel: string;
  slugs: SlugSettings;
}

/** What the slug store needs; shared by `serve` and the `slug` CLI. */
export interface SlugSettings {
  dir: string;
  owner: { uid: number; gid: number };
  budgetBytes: number;
  floorBytes: number;
  s3: { region?: string; endpoint?: string; forcePathStyle?: boolean };
}

export const DEFAULTS = {
  stateDir: '/var/lib/slipway',
  cgroupParent: '/slipway',
  runtime: 'runc' as const,
  reservedMemoryMb: 1024,
  portRange: [20000, 29999] as [number, number],
  dynoUser: { uid: 64000, gid: 64000 },
  bootTimeoutMs: 60_000, // Heroku's R10 boot timeout
  stopGraceMs: 30_000, // Heroku's SIGTERM-to-SIGKILL grace
  nofile: 10_000, // Heroku's open-file limit per dyno
  diagnosticsListen: '127.0.0.1:7701',
  slugCacheBudgetMb: 20 * 1024,
  slugCacheFloorMb: 2 * 1024,
};

/** First non-internal IPv4 address: where dyno ports are reachable from the router. */
export function defaultAddress(): string {
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

export function validateFileConfig(value: unknown, source: string): FileConfig {
  if (!checkFileConfig.Check(value)) {
    const e = checkFileConfig.Errors(value).First();
    throw new SlipwayError('CONFIG_INVALID', `${source}: ${e ? `${e.path || '/'} ${e.message}` : 'invalid'}`);
  }
  return value;
}

function readSecret(file: string, what: string): string {
  try {
    const v = readFileSync(file, 'utf8').trim();
    if (!v) throw new Error('empty');
    return v;
  } catch (err) {
    throw new SlipwayError('CONFIG_INVALID', `cannot read ${what} from ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/** The config file (explicit, or the default path when it exists) merged with flags (flags win). */
export function loadFileConfig(configPath: string | undefined, flags: FileConfig = {}): FileConfig {
  let file: FileConfig = {};
  const path = configPath ?? (existsSync(DEFAULT_CONFIG_PATH) ? DEFAULT_CONFIG_PATH : undefined);
  if (path) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      throw new SlipwayError('CONFIG_INVALID', `${path}: ${(err as Error).message}`, { cause: err });
    }
    file = validateFileConfig(parsed, path);
  }
  return validateFileConfig({ ...file, ...flags }, 'flags');
}

export function slugSettings(c: FileConfig): SlugSettings {
  const mb = 1024 * 1024;
  return {
    dir: join(c.stateDir ?? DEFAULTS.stateDir, 'slugs'),
    owner: c.dynoUser ?? DEFAULTS.dynoUser,
    budgetBytes: (c.slugCacheBudgetMb ?? DEFAULTS.slugCacheBudgetMb) * mb,
    floorBytes: (c.slugCacheFloorMb ?? DEFAULTS.slugCacheFloorMb) * mb,
    s3: c.s3 ?? {},
  };
}

/** Merges file and flag values (flags win) and resolves secrets. */
export function resolveConfig(configPath: string | undefined, flags: FileConfig, env = process.env): AgentConfig {
  const c = loadFileConfig(configPath, flags);
  const stateDir = c.stateDir ?? DEFAULTS.stateDir;
  const coordinatorUrl = c.coordinatorUrl ?? env.SLIPWAY_COORDINATOR_URL;
  if (!coordinatorUrl) throw new SlipwayError('CONFIG_INVALID', 'no coordinator URL (--coordinator or coordinatorUrl)');
  const token = c.tokenFile ? readSecret(c.tokenFile, 'the coordinator token') : env.SLIPWAY_AGENT_TOKEN;
  if (!token) throw new SlipwayError('CONFIG_INVALID', 'no coordinator token (--token-file, tokenFile or SLIPWAY_AGENT_TOKEN)');
  const portRange = c.portRange ?? DEFAULTS.portRange;
  if (portRange[0] > portRange[1]) throw new SlipwayError('CONFIG_INVALID', `portRange ${portRange.join('-')} is empty`);
  const restarts = { ...DEFAULT_RESTART_POLICY, ...c.restarts };
  const link = c.link ?? {};
  if ((link.clientCertFile === undefined) !== (link.clientKeyFile === undefined)) {
    throw new SlipwayError('CONFIG_INVALID', 'link.clientCertFile and link.clientKeyFile go together');
  }
  if (restarts.capMs < restarts.baseMs) throw new SlipwayError('CONFIG_INVALID', `restarts.capMs ${restarts.capMs} is below restarts.baseMs ${restarts.baseMs}`);
  return {
    agentId: c.agentId ?? hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 128),
    coordinatorUrl,
    token,
    ca: c.caFile ? readSecret(c.caFile, 'the CA bundle') : undefined,
    stateDir,
    address: c.address ?? defaultAddress(),
    cgroupParent: c.cgroupParent ?? DEFAULTS.cgroupParent,
    runtime: c.runtime ?? DEFAULTS.runtime,
    dockerSocket: c.dockerSocket,
    reservedMemoryMb: c.reservedMemoryMb ?? DEFAULTS.reservedMemoryMb,
    portRange,
    dynoUser: c.dynoUser ?? DEFAULTS.dynoUser,
    bootTimeoutMs: c.bootTimeoutMs ?? DEFAULTS.bootTimeoutMs,
    stopGraceMs: c.stopGraceMs ?? DEFAULTS.stopGraceMs,
    nofile: c.nofile ?? DEFAULTS.nofile,
    restarts,
    memory: { ...DEFAULT_MEMORY_SETTINGS, ...c.memory },
    // Heroku: every 24 h plus up to 216 min, so that a fleet's dynos do not cycle in step.
    cycling: { enabled: true, periodMs: 24 * 3_600_000, jitterMs: 216 * 60_000, ...c.cycling },
    link: {
      unknownDynoGraceMs: link.unknownDynoGraceMs ?? UNKNOWN_DYNO_GRACE_MS,
      clientCert: link.clientCertFile && link.clientKeyFile
        ? { cert: readSecret(link.clientCertFile, 'the client certificate'), key: readSecret(link.clientKeyFile, 'the client key') }
        : undefined,
    },
    diagnosticsListen: c.diagnosticsListen ?? DEFAULTS.diagnosticsListen,
    diagnosticsTokenFile: c.diagnosticsTokenFile ?? join(stateDir, 'agent', 'diagnostics.token'),
    logLevel: c.logLevel ?? env.SLIPWAY_LOG_LEVEL ?? 'info',
    slugs: slugSettings(c),
  };
}
