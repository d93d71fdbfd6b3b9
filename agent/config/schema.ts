// The one source of the agent's configuration: every key's type, default, meaning and flag.
// The config file is checked against this schema; `slipway-agent --help` (agent/config/help.ts)
// and the README's configuration table (agent/config/docs.ts) are generated from it, and
// test/unit/agent/config/docs.test.ts fails when the README's copy is stale.
//
// A key carries, beside its JSON Schema type: `default` (filled in by Value.Default), or
// `defaultText` when the default is computed at start or left to a library, or `mandatory`;
// `description`, the README's "meaning" (also the --help text, backticks dropped); and, where it
// has them, `flag` ('--state-dir DIR': the flag and the placeholder --help shows) and `env`.
// Numbers that a pure policy module owns (restarts, memory, the link's grace) are taken from
// that module's constant, so that no number is written twice. A new key is added here only: its
// flag (if any) is then parsed by `serve`, listed by --help and tabled by `npm run config-docs`.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { DEFAULT_RESTART_POLICY } from '../dynos/restart-policy.js';
import { DEFAULT_MEMORY_SETTINGS } from '../dynos/memory-policy.js';
import { UNKNOWN_DYNO_GRACE_MS } from '../link/convergence.js';
import { DEFAULT_FD_HEADROOM, DEFAULT_STATE_DIR_FLOOR_MB } from '../host/pressure.js';

export const DEFAULT_CONFIG_PATH = '/etc/slipway/agent.json';

/** What a key says beside its type. */
export interface KeyMeta {
  /** The key's meaning, in Markdown: the README's table, and --help without the backticks. */
  description: string;
  default?: unknown;
  /** For a key without a static default: what happens when it is unset. */
  defaultText?: string;
  /** The agent refuses to start unless the file, a flag or the env sets it. (Not JSON Schema's
   * `required`, which TypeBox writes on every object: the list of its non-optional members.) */
  mandatory?: true;
  /** The command-line flag and its value's placeholder, '--state-dir DIR'; booleans have none. */
  flag?: string;
  /** An environment variable that sets the key when neither the file nor a flag does. */
  env?: string;
  /** An environment variable holding the secret itself, used when the key (its file) is unset. */
  secretEnv?: string;
}

/** Typed metadata for a schema's options: a misspelt field is a compile error. */
const meta = (m: KeyMeta): KeyMeta => m;

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
/** A placement zone's name: the protocol's AgentIdentity.zone (shared/protocol.ts). */
export const ZONE_PATTERN = '^[A-Za-z0-9._-]{1,64}$';

export const AgentConfigSchema = Type.Object({
  // One of coordinatorUrl and coordinatorUrls is required (resolve.ts): they are one setting,
  // a list of one or a list, so neither is `mandatory` on its own.
  coordinatorUrl: Type.Optional(Type.String({ pattern: '^wss?://', ...meta({
    defaultText: '`coordinatorUrls`; one of the two is required', flag: '--coordinator URL', env: 'SLIPWAY_COORDINATOR_URL',
    description: "`ws://` or `wss://` URL of the coordinator's agent endpoint (`/v1/agent`)" }) })),
  // 16: a leader and its followers are a handful of processes; a longer list is a mistake, and
  // every URL may cost a dial per round of a failover.
  coordinatorUrls: Type.Optional(Type.Array(Type.String({ pattern: '^wss?://' }), { minItems: 1, maxItems: 16, uniqueItems: true, ...meta({
    defaultText: '`coordinatorUrl` as a list of one; one of the two is required', flag: '--coordinator-urls URL,URL', env: 'SLIPWAY_COORDINATOR_URLS',
    description: 'the agent endpoints of several coordinators sharing one store, 1 to 16, dialled in turn (docs/protocol.md, "Several coordinators"); comma-separated as a flag or env; not together with `coordinatorUrl`' }) })),
  tokenFile: Type.Optional(Type.String({ minLength: 1, ...meta({
    mandatory: true, flag: '--token-file FILE', secretEnv: 'SLIPWAY_AGENT_TOKEN',
    description: 'file holding the bearer token presented on the upgrade (never logged)' }) })),
  caFile: Type.Optional(Type.String({ minLength: 1, ...meta({
    defaultText: 'system CAs', flag: '--ca-file FILE',
    description: "PEM bundle a `wss://` coordinator's certificate must chain to" }) })),
  agentId: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._-]{1,128}$', ...meta({
    defaultText: 'the EC2 instance id (`ec2`), else the hostname', flag: '--agent-id ID', description: "the agent's identity at the coordinator" }) })),
  address: Type.Optional(Type.String({ minLength: 1, maxLength: 255, ...meta({
    defaultText: 'the EC2 private IPv4 (`ec2`), else the first non-loopback IPv4', flag: '--address ADDR',
    description: 'where dyno endpoints are reachable (reported, and probed for readiness)' }) })),
  zone: Type.Optional(Type.String({ pattern: ZONE_PATTERN, ...meta({
    defaultText: 'the EC2 availability zone (`ec2`), else none', flag: '--zone ZONE',
    description: "this host's failure domain, sent in the hello (`agent.zone`): the coordinator spreads an app's dynos across zones" }) })),
  stateDir: Type.Optional(Type.String({ pattern: '^/', ...meta({
    default: '/var/lib/slipway', flag: '--state-dir DIR', description: "the agent's state: `slugs/`, `stacks/`, `dynos/`, `agent/`" }) })),
  cgroupParent: Type.Optional(Type.String({ pattern: '^/[A-Za-z0-9._/-]*$', ...meta({
    default: '/slipway', flag: '--cgroup-parent PATH', description: 'parent cgroup of every dyno' }) })),
  runtime: Type.Optional(Type.Union([Type.Literal('runc'), Type.Literal('lxc'), Type.Literal('docker')], meta({
    default: 'runc', flag: '--runtime runc|lxc|docker',
    description: 'the container runtime of this host: `runc`, `lxc` or `docker` (README, "Runtimes")' }))),
  // The engine's default lives beside the engine client (agent/runtime/docker/engine.ts), which
  // loads dockerode; docs.test.ts checks that this text names it.
  dockerSocket: Type.Optional(Type.String({ pattern: '^/', ...meta({
    defaultText: '`/var/run/docker.sock`', description: "the engine's API socket, for `runtime: docker`" }) })),
  reservedMemoryMb: Type.Optional(Type.Integer({ minimum: 0, ...meta({
    default: 1024, flag: '--reserved-memory-mb N',
    description: 'memory kept back for the OS and the agent: allocatable = total − reserve' }) })),
  portRange: Type.Optional(Type.Tuple([Type.Integer({ minimum: 1, maximum: 65535 }), Type.Integer({ minimum: 1, maximum: 65535 })], meta({
    default: [20000, 29999], flag: '--port-range MIN-MAX', description: 'host ports handed to web dynos as `$PORT`' }))),
  // No user namespace yet, so the id is the same on the host: one no host account uses.
  dynoUser: Type.Optional(Type.Object({
    uid: Type.Integer({ minimum: 1, ...meta({ description: 'user id' }) }),
    gid: Type.Integer({ minimum: 1, ...meta({ description: 'group id' }) }),
  }, { additionalProperties: false, ...meta({
    default: { uid: 64000, gid: 64000 },
    description: "the unprivileged user dynos run as (owns slug files); the busybox stack's `/etc/passwd` names it `dyno`" }) })),
  // Heroku's numbers: the R10 boot timeout, the SIGTERM-to-SIGKILL grace, the open-file limit.
  bootTimeoutMs: Type.Optional(Type.Integer({ minimum: 100, ...meta({
    default: 60_000, flag: '--boot-timeout-ms N',
    description: 'R10: a web dyno must accept TCP on `$PORT` within this' }) })),
  stopGraceMs: Type.Optional(Type.Integer({ minimum: 0, ...meta({
    default: 30_000, flag: '--stop-grace-ms N', description: 'SIGTERM to SIGKILL grace' }) })),
  nofile: Type.Optional(Type.Integer({ minimum: 64, ...meta({
    default: 10_000, description: 'RLIMIT_NOFILE per dyno' }) })),
  memory: Type.Optional(Type.Object({
    r15Multiple: Type.Optional(Type.Number({ minimum: 1, maximum: 16, ...meta({ default: DEFAULT_MEMORY_SETTINGS.r15Multiple, description: 'R15 (and the hard limit) at this multiple of the quota' }) })),
    r14IntervalMs: Type.Optional(Type.Integer({ minimum: 0, ...meta({ default: DEFAULT_MEMORY_SETTINGS.r14IntervalMs, description: 'least time between two R14 warnings of one dyno' }) })),
    sampleMs: Type.Optional(Type.Integer({ minimum: 100, ...meta({ default: DEFAULT_MEMORY_SETTINGS.sampleMs, description: "how often each dyno's memory is read" }) })),
    warnHorizonMs: Type.Optional(Type.Integer({ minimum: 0, ...meta({ default: DEFAULT_MEMORY_SETTINGS.warnHorizonMs, description: "warn (a `slipway[web.1]` line and a `memory_warning` event) when a dyno's memory trend is projected to reach R15 within this; once per episode; `0`: never" }) })),
  }, { additionalProperties: false, ...meta({
    default: {},
    description: "every `sampleMs` each dyno's working set (usage minus inactive file cache) plus swap is read from its cgroup: above the quota an R14 warning (at most once per `r14IntervalMs`), at `r15Multiple` x quota R15 (killed, restarted); the kernel's hard limit is `r15Multiple` x quota, so a dyno can exceed its quota as on Heroku. `1` makes the quota the hard limit (no overcommit, no R14)" }) })),
  // Heroku: every 24 h plus up to 216 min, so that a fleet's dynos do not cycle in step.
  cycling: Type.Optional(Type.Object({
    enabled: Type.Optional(Type.Boolean(meta({ default: true, description: 'cycle dynos at all' }))),
    periodMs: Type.Optional(Type.Integer({ minimum: 1000, ...meta({ default: 24 * HOUR_MS, description: 'the least time a dyno runs before it is cycled' }) })),
    jitterMs: Type.Optional(Type.Integer({ minimum: 0, ...meta({ default: 216 * MINUTE_MS, description: 'most random time added to periodMs' }) })),
  }, { additionalProperties: false, ...meta({
    default: {},
    description: "Heroku's daily cycling: a dyno up for `periodMs` plus a random part of `jitterMs` (24 h + 0-216 min) reports `starting`, is stopped with grace and started afresh from the slug; `enabled: false` turns it off" }) })),
  restarts: Type.Optional(Type.Object({
    baseMs: Type.Optional(Type.Integer({ minimum: 0, ...meta({ default: DEFAULT_RESTART_POLICY.baseMs, description: 'delay after the second crash in a row' }) })),
    capMs: Type.Optional(Type.Integer({ minimum: 0, ...meta({ default: DEFAULT_RESTART_POLICY.capMs, description: 'the longest delay' }) })),
    stableAfterMs: Type.Optional(Type.Integer({ minimum: 0, ...meta({ default: DEFAULT_RESTART_POLICY.stableAfterMs, description: 'a run this long resets the crash count' }) })),
    jitter: Type.Optional(Type.Number({ minimum: 0, maximum: 1, ...meta({ default: DEFAULT_RESTART_POLICY.jitter, description: 'fraction of the delay added at random' }) })),
  }, { additionalProperties: false, ...meta({
    default: {},
    description: 'crash restarts: the first at once, then `baseMs` doubling up to `capMs` (20 min), plus up to `jitter` of it at random; a run of `stableAfterMs` or a new release resets the count' }) })),
  link: Type.Optional(Type.Object({
    unknownDynoGraceMs: Type.Optional(Type.Integer({ minimum: 0, ...meta({ default: UNKNOWN_DYNO_GRACE_MS, description: "how long a dyno the coordinator's desired set does not list keeps running" }) })),
    clientCertFile: Type.Optional(Type.String({ minLength: 1, ...meta({ defaultText: 'none', description: 'PEM client certificate, with clientKeyFile' }) })),
    clientKeyFile: Type.Optional(Type.String({ minLength: 1, ...meta({ defaultText: 'none', description: 'PEM key of clientCertFile' }) })),
  }, { additionalProperties: false, ...meta({
    default: {},
    description: "the coordinator link: how long a dyno that the coordinator's desired set does not list keeps running before it is stopped (`unknownDynoGraceMs`; see docs/protocol.md, Convergence), and `clientCertFile` + `clientKeyFile` (PEM) for a coordinator that requires client certificates" }) })),
  // A unix socket path is at most 107 bytes (sun_path); the pattern keeps it to 100 plain characters.
  diagnosticsListen: Type.Optional(Type.String({ pattern: '^((127\\.[0-9.]+|localhost|\\[::1\\]):[0-9]{1,5}|unix:/[A-Za-z0-9._/-]{1,100})$', ...meta({
    default: '127.0.0.1:7701', flag: '--diagnostics-listen ADDR',
    description: 'address of the diagnostics endpoint: a loopback `host:port`, or `unix:/run/slipway/diagnostics.sock` for a unix socket (mode 0600; a stale one from a crashed agent is replaced, and it is removed on exit)' }) })),
  diagnosticsTokenFile: Type.Optional(Type.String({ minLength: 1, ...meta({
    defaultText: '`<stateDir>/agent/diagnostics.token`', description: 'created (0600) with a random token if absent' }) })),
  logLevel: Type.Optional(Type.Union(LOG_LEVELS.map((l) => Type.Literal(l)), meta({
    default: 'info', env: 'SLIPWAY_LOG_LEVEL', description: 'pino level' }))),
  slugCacheBudgetMb: Type.Optional(Type.Integer({ minimum: 1, ...meta({
    default: 20 * 1024, description: 'most the slug cache may hold' }) })),
  slugCacheFloorMb: Type.Optional(Type.Integer({ minimum: 0, ...meta({
    default: 2 * 1024, description: "free space the cache's file system keeps" }) })),
  stateDirFloorMb: Type.Optional(Type.Integer({ minimum: 0, ...meta({
    default: DEFAULT_STATE_DIR_FLOOR_MB, description: "free space the state dir's file system keeps: below it new dynos and slug prefetches are refused with `STATE_DIR_FULL` (running dynos are left alone)" }) })),
  fdHeadroom: Type.Optional(Type.Integer({ minimum: 0, ...meta({
    default: DEFAULT_FD_HEADROOM, description: 'file descriptors the agent keeps free under its soft `RLIMIT_NOFILE`: with fewer left new dynos are refused with `AGENT_FD_LIMIT`' }) })),
  requireSignedSlugs: Type.Optional(Type.Boolean(meta({
    default: false,
    description: 'a slug runs only if its detached minisign signature (the slug reference\'s `signature`) verifies against one of `slugPublicKeys`; checked before extraction (`SLUG_UNSIGNED`, `SLUG_SIGNATURE_INVALID`)' }))),
  slugPublicKeys: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Za-z0-9+/]{56}$' }), meta({
    default: [],
    description: 'trusted minisign public keys (the base64 line of `minisign.pub`); list the new key beside the old one to rotate' }))),
  network: Type.Optional(Type.Object({
    subnet: Type.Optional(Type.String({ pattern: '^[0-9]{1,3}(\\.[0-9]{1,3}){3}/(1[6-9]|2[0-4])$', ...meta({ default: '100.72.0.0/16', description: "dyno addresses (IPv4, /16 to /24); the first address is the bridge's" }) })),
    bridge: Type.Optional(Type.String({ pattern: '^[a-z][a-z0-9]{0,11}$', ...meta({ default: 'slipway0', description: 'the host bridge every dyno\'s veth is a port of' }) })),
    table: Type.Optional(Type.String({ pattern: '^[a-z][a-z0-9_]{0,31}$', ...meta({ default: 'slipway', description: "the agent's nftables table (`inet`), replaced whole at start" }) })),
    metadataAddresses: Type.Optional(Type.Array(Type.String({ minLength: 2, maxLength: 45 }), meta({ default: ['169.254.169.254', '169.254.170.2', 'fd00:ec2::254'], description: 'addresses dynos may never reach: EC2 instance metadata, ECS task credentials' }))),
    dns: Type.Optional(Type.Array(Type.String({ minLength: 2, maxLength: 45 }), { maxItems: 3, ...meta({ defaultText: "the host's resolvers (upstream ones behind a loopback stub)", description: "nameservers written into each dyno's `/etc/resolv.conf`" }) })),
    poolSize: Type.Optional(Type.Integer({ minimum: 0, maximum: 64, ...meta({ default: 4, description: 'network namespaces kept ready, so that a start does not wait for one' }) })),
  }, { additionalProperties: false, ...meta({
    default: {},
    description: "each dyno's own network namespace (docs/network.md): a veth on the host bridge, an address from `subnet`, the agent's nftables table `slipway`; dynos reach the internet and nothing of the host, of other dynos or of `metadataAddresses`" }) })),
  // EC2 (issue 13): IMDSv2 identity and the spot / scale-in / rebalance signals, agent/host/ec2/.
  ec2: Type.Optional(Type.Object({
    enabled: Type.Optional(Type.Union([Type.Literal('auto'), Type.Boolean()], meta({ default: 'auto', description: "`auto`: on EC2 when DMI names it and the token endpoint answers within 500 ms (else off, at no cost to the start); `true`: the start fails without the instance's identity; `false`: off" }))),
    endpoint: Type.Optional(Type.String({ pattern: '^http://[^/]+$', ...meta({ defaultText: '`http://169.254.169.254`', description: 'the instance metadata service (tests: a fake on loopback)' }) })),
    pollMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 60_000, ...meta({ default: 5_000, description: 'how often the spot notice, the rebalance recommendation and the Auto Scaling lifecycle state are read' }) })),
  }, { additionalProperties: false, ...meta({
    default: {},
    description: "EC2's instance metadata (IMDSv2 only): the agent id defaults to the instance id and `address` to its private IPv4; a spot interruption or an Auto Scaling termination drains the host and tells the coordinator the deadline; a rebalance recommendation is reported to placement" }) })),
  s3: Type.Optional(Type.Object({
    region: Type.Optional(Type.String({ minLength: 1, maxLength: 64, ...meta({ defaultText: "the SDK's", description: 'region of the bucket' }) })),
    endpoint: Type.Optional(Type.String({ pattern: '^https?://', ...meta({ defaultText: "AWS's", description: 'an S3-compatible endpoint' }) })),
    forcePathStyle: Type.Optional(Type.Boolean(meta({ defaultText: "the SDK's", description: 'path-style bucket URLs' }))),
  }, { additionalProperties: false, ...meta({
    default: {},
    description: '`{region, endpoint, forcePathStyle}` for `s3://` slugs (credentials: the SDK\'s default chain)' }) })),
}, { additionalProperties: false });

/** What a config file may hold (and what flags set): every key optional. */
export type FileConfig = Static<typeof AgentConfigSchema>;
export type ConfigKey = keyof FileConfig;

/** Keys without a static default: computed at start or left unset (their defaultText says which). */
export const NO_DEFAULT = ['coordinatorUrl', 'coordinatorUrls', 'zone', 'tokenFile', 'caFile', 'agentId', 'address', 'dockerSocket', 'diagnosticsTokenFile'] as const;
type Nested = 'restarts' | 'cycling' | 'memory' | 'link' | 's3' | 'network' | 'ec2';
type Present<T> = Required<NonNullable<T>>;

/** A file config after Value.Default: every key with a default is there. */
export type Defaulted = Required<Omit<FileConfig, (typeof NO_DEFAULT)[number] | Nested>> & Pick<FileConfig, (typeof NO_DEFAULT)[number]> & {
  restarts: Present<FileConfig['restarts']>;
  cycling: Present<FileConfig['cycling']>;
  memory: Present<FileConfig['memory']>;
  link: NonNullable<FileConfig['link']> & { unknownDynoGraceMs: number };
  s3: NonNullable<FileConfig['s3']>;
  ec2: Required<Omit<NonNullable<FileConfig['ec2']>, 'endpoint'>> & Pick<NonNullable<FileConfig['ec2']>, 'endpoint'>;
  network: Required<Omit<NonNullable<FileConfig['network']>, 'dns'>> & Pick<NonNullable<FileConfig['network']>, 'dns'>;
};

/** The schema's keys, in its order (the order of --help and of the README's table). */
export const CONFIG_KEYS = Object.keys(AgentConfigSchema.properties) as ConfigKey[];

export function keySchema(key: ConfigKey): TSchema {
  return AgentConfigSchema.properties[key];
}

export function keyMeta(schema: TSchema): KeyMeta {
  return schema as KeyMeta;
}

/** A copy of `c` with the schema's defaults filled in; `c` has been validated. */
export function withDefaults(c: FileConfig): Defaulted {
  return Value.Default(AgentConfigSchema, Value.Clone(c)) as Defaulted;
}

/** Every static default, from the schema (for code that has a file config without them). */
export const DEFAULTS: Defaulted = withDefaults({});
