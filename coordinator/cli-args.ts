// The command line of slipway-coordinator: usage text and flags -> CoordinatorConfig. Kept
// apart from main.ts so tests can parse arguments without starting a process.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { SlipwayError } from '../shared/errors.js';
import {
  DEFAULT_LISTEN, DEFAULT_ROUTER_LISTEN, DEFAULT_SIZES, DEFAULT_STACK, DEFAULT_TIMING,
  parseListenAddress, readApiTokenFile, readPemFile, readSecretFile, readSizesFile, readTokenFile, validateStackName, type CoordinatorConfig,
} from './config.js';
import { parseApiTokens } from './api-tokens.js';

export const USAGE = `Usage: slipway-coordinator serve [options]

Runs the coordinator: the agents' WebSocket and the API on --listen, the dev router on
--router-listen.

Options:
  --listen HOST:PORT         API and agent WebSocket (default ${DEFAULT_LISTEN}; port 0 picks one)
  --router-listen HOST:PORT  dev HTTP router, Host: <app>.localhost (default ${DEFAULT_ROUTER_LISTEN})
  --token-file PATH          file holding the bearer token agents must present
                             (else env SLIPWAY_COORDINATOR_TOKEN; one of them is required)
  --api-token-file PATH      file of the API's bearer tokens, one per line (else env
                             SLIPWAY_API_TOKEN; one of them is required). Not the agents'
                             token: the developer CLI \`slipway\` and operators use these
  --default-stack NAME       stack of formations that name none (default ${DEFAULT_STACK})
  --sizes-file PATH          JSON object of size name -> {name, memoryMb, cpuShares, pidsLimit}
                             replacing the built-in Heroku-like table
  --coordinator-id ID        id sent to agents in welcome (default: hostname + random)
  --tls-cert PATH --tls-key PATH
                             serve the API and the agents' WebSocket over TLS (wss://)
  --tls-client-ca PATH       with TLS: require agents to present a client certificate
                             that chains to this CA bundle (mutual TLS)
  --drain-ca-file PATH       CAs (PEM) the apps' log drains trust besides the system's
                             (a log service with a private CA)
  --database-url-file PATH   file holding a postgres:// URL: state in PostgreSQL, and
                             leadership among the coordinators that share it (else env
                             SLIPWAY_DATABASE_URL; neither: state in memory, one coordinator)
  --leader-session-timeout-ms MS
                             with a database: how long a stopped leader keeps the
                             leadership (its lock session's idle timeout; default 5000)
  --leader-retry-ms MS       with a database: how often a follower tries to take the
                             leadership (default 250)
  --router dev|haproxy       the app router: the Node dev router (default) or HAProxy 2.6
                             driven through its runtime API
  --router-work-dir DIR      with --router haproxy: its config, map and admin socket
                             (default /run/slipway-coordinator/haproxy)
  --help                     print this and exit

Exit status: 0 after SIGINT/SIGTERM, 2 on invalid configuration, 1 on any other failure.
`;

const OPTIONS = {
  'listen': { type: 'string' },
  'router-listen': { type: 'string' },
  'token-file': { type: 'string' },
  'api-token-file': { type: 'string' },
  'default-stack': { type: 'string' },
  'sizes-file': { type: 'string' },
  'coordinator-id': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-client-ca': { type: 'string' },
  'database-url-file': { type: 'string' },
  'drain-ca-file': { type: 'string' },
  'leader-session-timeout-ms': { type: 'string' },
  'leader-retry-ms': { type: 'string' },
  'router': { type: 'string' },
  'router-work-dir': { type: 'string' },
  'help': { type: 'boolean' },
} as const;

/** Reads the configuration from flags and environment; throws CONFIG_INVALID. */
export function configFromArgs(args: string[], env: NodeJS.ProcessEnv): CoordinatorConfig | 'help' {
  let parsed;
  try {
    parsed = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    throw new SlipwayError('CONFIG_INVALID', (err as Error).message, { cause: err });
  }
  const { values, positionals } = parsed;
  if (values.help) return 'help';
  if (positionals.length !== 1 || positionals[0] !== 'serve') {
    throw new SlipwayError('CONFIG_INVALID', `expected the subcommand "serve", got ${JSON.stringify(positionals.join(' '))} (see --help)`);
  }
  const token = values['token-file'] !== undefined ? readTokenFile(values['token-file']) : (env.SLIPWAY_COORDINATOR_TOKEN ?? '').trim();
  if (token === '') throw new SlipwayError('CONFIG_INVALID', 'no agent token: pass --token-file PATH or set SLIPWAY_COORDINATOR_TOKEN');
  const apiTokens = values['api-token-file'] !== undefined
    ? readApiTokenFile(values['api-token-file'])
    : (env.SLIPWAY_API_TOKEN ?? '').trim() !== '' ? parseApiTokens(env.SLIPWAY_API_TOKEN ?? '', 'SLIPWAY_API_TOKEN') : [];
  if (apiTokens.length === 0) throw new SlipwayError('CONFIG_INVALID', 'no API token: pass --api-token-file PATH or set SLIPWAY_API_TOKEN (the API scales apps: it is never open)');
  if (apiTokens.includes(token)) throw new SlipwayError('CONFIG_INVALID', "an API token is the agents' token: a host's secret must not be able to drive the API");
  if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) {
    throw new SlipwayError('CONFIG_INVALID', '--tls-cert and --tls-key go together');
  }
  if (values['tls-client-ca'] !== undefined && values['tls-cert'] === undefined) {
    throw new SlipwayError('CONFIG_INVALID', '--tls-client-ca needs --tls-cert and --tls-key');
  }
  const tls = values['tls-cert'] !== undefined && values['tls-key'] !== undefined
    ? {
      cert: readPemFile(values['tls-cert'], '--tls-cert'),
      key: readPemFile(values['tls-key'], '--tls-key'),
      ...(values['tls-client-ca'] !== undefined ? { clientCa: readPemFile(values['tls-client-ca'], '--tls-client-ca') } : {}),
    }
    : undefined;
  const databaseUrl = values['database-url-file'] !== undefined ? readSecretFile(values['database-url-file'], '--database-url-file') : (env.SLIPWAY_DATABASE_URL ?? '').trim();
  if (databaseUrl !== '' && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new SlipwayError('CONFIG_INVALID', 'the database URL must start with postgres:// or postgresql://');
  }
  const router = values.router ?? 'dev';
  if (router !== 'dev' && router !== 'haproxy') throw new SlipwayError('CONFIG_INVALID', `--router must be dev or haproxy, got ${JSON.stringify(router)}`);
  return {
    ...(tls ? { tls } : {}),
    ...(values['drain-ca-file'] !== undefined ? { drainCa: readPemFile(values['drain-ca-file'], '--drain-ca-file') } : {}),
    store: databaseUrl !== '' ? { kind: 'postgres', url: databaseUrl } : { kind: 'memory' },
    router,
    routerWorkDir: values['router-work-dir'] ?? '/run/slipway-coordinator/haproxy',
    listen: parseListenAddress(values.listen ?? DEFAULT_LISTEN, '--listen'),
    routerListen: parseListenAddress(values['router-listen'] ?? DEFAULT_ROUTER_LISTEN, '--router-listen'),
    token,
    apiTokens,
    coordinatorId: values['coordinator-id'] ?? `${hostname()}-${randomUUID().slice(0, 8)}`,
    defaultStack: validateStackName(values['default-stack'] ?? DEFAULT_STACK, '--default-stack'),
    sizes: values['sizes-file'] !== undefined ? readSizesFile(values['sizes-file']) : DEFAULT_SIZES,
    timing: {
      ...DEFAULT_TIMING,
      leaderSessionTimeoutMs: msFlag(values['leader-session-timeout-ms'], '--leader-session-timeout-ms', DEFAULT_TIMING.leaderSessionTimeoutMs, 1_000, 600_000),
      leaderRetryMs: msFlag(values['leader-retry-ms'], '--leader-retry-ms', DEFAULT_TIMING.leaderRetryMs, 100, 60_000),
    },
  };
}

/** A duration flag in milliseconds within [min, max]. */
function msFlag(text: string | undefined, flag: string, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback;
  const ms = Number(text);
  if (!Number.isInteger(ms) || ms < min || ms > max) throw new SlipwayError('CONFIG_INVALID', `${flag} must be an integer from ${min} to ${max} (milliseconds), got ${JSON.stringify(text)}`);
  return ms;
}
