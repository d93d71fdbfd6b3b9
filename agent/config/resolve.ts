// The configuration `serve` runs with: the config file (validated), then the flags over it,
// then the environment for keys the schema gives an env variable, then the schema's defaults
// (agent/config/schema.ts), then the defaults computed on this host and the secrets read from
// their files. Everything is checked here, so a bad value is CONFIG_INVALID before any
// component starts.
import { readFileSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { SlipwayError } from '../../shared/errors.js';
import type { RestartPolicyOptions } from '../dynos/restart-policy.js';
import type { Ec2Settings } from '../host/ec2/identity.js';
import { CONFIG_KEYS, ZONE_PATTERN, keyMeta, keySchema, withDefaults, type ConfigKey, type FileConfig } from './schema.js';
import { loadFileConfig, slugSettings, validateFileConfig, type SlugSettings } from './load.js';
import { flagOf, valueFromText } from './flags.js';

export interface AgentConfig {
  agentId: string;
  /** The coordinators' agent endpoints in the operator's order, dialled in turn
   * (agent/link/url-rotation.ts): coordinatorUrls, or coordinatorUrl as a list of one. */
  coordinatorUrls: string[];
  /** The first of coordinatorUrls (the one `doctor` checks). */
  coordinatorUrl: string;
  /** The configured placement zone; start.ts falls back to EC2's (placementZone below). */
  zone: string | undefined;
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
  /** R14/R15 (agent/dynos/memory-policy.ts), how often dynos are sampled, and the warning
   * before R15 (agent/dynos/memory-projection.ts). */
  memory: { r15Multiple: number; r14IntervalMs: number; sampleMs: number; warnHorizonMs: number };
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
  /** The state dir's free-space floor and the descriptor headroom (agent/host/pressure.ts). */
  stateDirFloorMb: number;
  fdHeadroom: number;
  /** Each dyno's own network namespace (agent/network/host-network.ts, docs/network.md). */
  network: { subnet: string; bridge: string; table: string; metadataAddresses: string[]; dns: string[] | undefined; poolSize: number };
  /** EC2 (agent/host/ec2/): absent means off (configs built in code, tests). `agentIdSet` and
   * `addressSet`: the operator chose them, so the instance id and private IPv4 do not replace them. */
  ec2?: Ec2Settings & { agentIdSet: boolean; addressSet: boolean };
}

/** Interfaces whose address is no place for a router to reach dynos: the dyno bridge, Docker's
 * bridges, veths. */
const NOT_UPLINKS = /^(docker[0-9]|br-|veth|sw[0-9a-f]{10}$|lxc)/;

/** First non-internal IPv4 address of an uplink: where dyno ports are reachable from the
 * router. 127.0.0.1 when there is none (start.ts then advertises the dyno bridge's address). */
export function defaultAddress(bridge = 'slipway0'): string {
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    if (name === bridge || NOT_UPLINKS.test(name)) continue;
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
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

// coordinatorUrl (one URL) and coordinatorUrls (the list) are one setting. The source that
// sets either of them sets it, in the usual order (flags, file, env), so a list in the file is
// not joined by an old SLIPWAY_COORDINATOR_URL in the unit's environment; one source that
// sets both is CONFIG_INVALID, as the agent could only guess which was meant.
const URL_KEYS: readonly ConfigKey[] = ['coordinatorUrl', 'coordinatorUrls'];

function setsUrls(c: FileConfig): boolean {
  return c.coordinatorUrl !== undefined || c.coordinatorUrls !== undefined;
}

function oneUrlSetting(c: FileConfig, source: string): FileConfig {
  if (c.coordinatorUrl !== undefined && c.coordinatorUrls !== undefined) {
    throw new SlipwayError('CONFIG_INVALID', `${source} sets both coordinatorUrl and coordinatorUrls: give one URL as coordinatorUrl, or the list as coordinatorUrls`);
  }
  return c;
}

/** The file with the flags over it; flags that name the coordinators replace the file's. */
function fileAndFlags(configPath: string | undefined, flags: FileConfig): FileConfig {
  const file = oneUrlSetting(loadFileConfig(configPath), configPath ?? 'the config file');
  oneUrlSetting(flags, 'the command line');
  const base: Record<string, unknown> = { ...file };
  if (setsUrls(flags)) for (const key of URL_KEYS) delete base[key];
  return validateFileConfig({ ...base, ...flags }, 'flags');
}

/** Keys neither the file nor a flag set, from their env variables (converted and checked like flags). */
function fromEnv(c: FileConfig, env: NodeJS.ProcessEnv): FileConfig {
  const out: Record<string, unknown> = { ...c };
  const urlsSet = setsUrls(c);
  for (const key of CONFIG_KEYS) {
    if (urlsSet && URL_KEYS.includes(key)) continue;
    const name = keyMeta(keySchema(key)).env;
    const text = name === undefined ? undefined : env[name];
    if (out[key] === undefined && text) out[key] = valueFromText(key, text, `env ${name}`);
  }
  return oneUrlSetting(out, 'the environment');
}

const ZONE = new RegExp(ZONE_PATTERN);

/** The hello's zone (AgentIdentity.zone): the configured one, else EC2's availability zone when
 * it is a valid zone name (an odd value from the metadata service must not make every hello
 * fail the coordinator's validation), else none. */
export function placementZone(configured: string | undefined, availabilityZone: string | undefined): string | undefined {
  return configured ?? (availabilityZone !== undefined && ZONE.test(availabilityZone) ? availabilityZone : undefined);
}

/** How a required key can be given, for the message that says it was not: "--x, x or env X". */
function sources(key: ConfigKey): string {
  const m = keyMeta(keySchema(key));
  const flag = flagOf(key);
  const ways = [...(flag ? [`--${flag.name}`] : []), key, ...[m.env ?? m.secretEnv].filter((e) => e !== undefined).map((e) => `env ${e}`)];
  return `${ways.slice(0, -1).join(', ')} or ${ways.at(-1)}`;
}

/** Merges file, flag and env values (in that order of precedence: flags win) and resolves secrets. */
export function resolveConfig(configPath: string | undefined, flags: FileConfig, env = process.env): AgentConfig {
  const c = withDefaults(fromEnv(fileAndFlags(configPath, flags), env));
  const coordinatorUrls = c.coordinatorUrls ?? (c.coordinatorUrl !== undefined ? [c.coordinatorUrl] : undefined);
  if (!coordinatorUrls) throw new SlipwayError('CONFIG_INVALID', `no coordinator URL (${sources('coordinatorUrl')}; or the list: ${sources('coordinatorUrls')})`);
  const tokenEnv = keyMeta(keySchema('tokenFile')).secretEnv;
  const token = c.tokenFile ? readSecret(c.tokenFile, 'the coordinator token') : tokenEnv && env[tokenEnv];
  if (!token) throw new SlipwayError('CONFIG_INVALID', `no coordinator token (${sources('tokenFile')})`);
  if (c.portRange[0] > c.portRange[1]) throw new SlipwayError('CONFIG_INVALID', `portRange ${c.portRange.join('-')} is empty`);
  if ((c.link.clientCertFile === undefined) !== (c.link.clientKeyFile === undefined)) {
    throw new SlipwayError('CONFIG_INVALID', 'link.clientCertFile and link.clientKeyFile go together');
  }
  if (c.restarts.capMs < c.restarts.baseMs) throw new SlipwayError('CONFIG_INVALID', `restarts.capMs ${c.restarts.capMs} is below restarts.baseMs ${c.restarts.baseMs}`);
  return {
    agentId: c.agentId ?? hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 128),
    coordinatorUrls,
    coordinatorUrl: coordinatorUrls[0]!,
    zone: c.zone,
    token,
    ca: c.caFile ? readSecret(c.caFile, 'the CA bundle') : undefined,
    stateDir: c.stateDir,
    address: c.address ?? defaultAddress(c.network.bridge),
    cgroupParent: c.cgroupParent,
    runtime: c.runtime,
    dockerSocket: c.dockerSocket,
    reservedMemoryMb: c.reservedMemoryMb,
    portRange: c.portRange,
    dynoUser: c.dynoUser,
    bootTimeoutMs: c.bootTimeoutMs,
    stopGraceMs: c.stopGraceMs,
    nofile: c.nofile,
    restarts: c.restarts,
    stateDirFloorMb: c.stateDirFloorMb,
    fdHeadroom: c.fdHeadroom,
    memory: c.memory,
    cycling: c.cycling,
    link: {
      unknownDynoGraceMs: c.link.unknownDynoGraceMs,
      clientCert: c.link.clientCertFile && c.link.clientKeyFile
        ? { cert: readSecret(c.link.clientCertFile, 'the client certificate'), key: readSecret(c.link.clientKeyFile, 'the client key') }
        : undefined,
    },
    diagnosticsListen: c.diagnosticsListen,
    diagnosticsTokenFile: c.diagnosticsTokenFile ?? join(c.stateDir, 'agent', 'diagnostics.token'),
    logLevel: c.logLevel,
    slugs: slugSettings(c),
    network: { subnet: c.network.subnet, bridge: c.network.bridge, table: c.network.table, metadataAddresses: c.network.metadataAddresses, dns: c.network.dns, poolSize: c.network.poolSize },
    ec2: { enabled: c.ec2.enabled, endpoint: c.ec2.endpoint, pollMs: c.ec2.pollMs, agentIdSet: c.agentId !== undefined, addressSet: c.address !== undefined },
  };
}
