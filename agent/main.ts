#!/usr/bin/env node
// slipway-agent: parses arguments, installs signal handlers and calls startAgent().
// Each command loads only its own modules (dynamic imports): the whole agent takes ~0.6 s to
// load, which an operator's `slipway-agent slug ls` should not pay.
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { DEFAULTS, type FileConfig } from './config.js';
import { asSlipwayError } from '../shared/errors.js';

const AGENT_VERSION = '0.1.0';

const USAGE = `Usage: slipway-agent <command> [options]

Commands:
  serve      Run the agent: dial the coordinator, run its dynos, serve diagnostics.
  cleanup    Remove every dyno container, mount and directory under the state dir.
  slug       Fetch, list and garbage-collect the slug cache (slipway-agent slug --help).
  stack      Import and list stacks (slipway-agent stack --help).
  dyno run   Run a one-off dyno on this host and exit with its exit code (slipway-agent dyno run --help).
  version    Print the version.

Options for serve (flags override the config file):
  --config FILE               JSON config (default ${'/etc/slipway/agent.json'} if present)
  --coordinator URL           ws:// or wss:// URL of the coordinator's agent endpoint
  --token-file FILE           bearer token for the coordinator (or env SLIPWAY_AGENT_TOKEN)
  --ca-file FILE              PEM CA bundle for a wss:// coordinator
  --agent-id ID               default: the hostname
  --address ADDR              address dyno endpoints are reachable at (default: first non-loopback IPv4)
  --state-dir DIR             default ${DEFAULTS.stateDir}
  --cgroup-parent PATH        default ${DEFAULTS.cgroupParent}
  --runtime runc|lxc|docker   the container runtime of this host (default ${DEFAULTS.runtime})
  --reserved-memory-mb N      memory kept back from dynos (default ${DEFAULTS.reservedMemoryMb})
  --port-range MIN-MAX        host ports for web dynos (default ${DEFAULTS.portRange.join('-')})
  --boot-timeout-ms N         R10 boot timeout (default ${DEFAULTS.bootTimeoutMs})
  --stop-grace-ms N           SIGTERM-to-SIGKILL grace (default ${DEFAULTS.stopGraceMs})
  --diagnostics-listen H:P    loopback address of the diagnostics endpoint (default ${DEFAULTS.diagnosticsListen})
  --stop-dynos-on-exit        stop every dyno (with grace) when the agent is asked to exit
  -h, --help                  this text

Options for cleanup:
  --state-dir DIR             default ${DEFAULTS.stateDir}
`;

function intFlag(v: string | undefined): number | undefined {
  return v === undefined ? undefined : Number(v);
}

async function serve(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' }, coordinator: { type: 'string' }, 'token-file': { type: 'string' }, 'ca-file': { type: 'string' },
      'agent-id': { type: 'string' }, address: { type: 'string' }, 'state-dir': { type: 'string' }, 'cgroup-parent': { type: 'string' },
      runtime: { type: 'string' }, 'reserved-memory-mb': { type: 'string' }, 'port-range': { type: 'string' }, 'boot-timeout-ms': { type: 'string' },
      'stop-grace-ms': { type: 'string' }, 'diagnostics-listen': { type: 'string' }, 'stop-dynos-on-exit': { type: 'boolean' },
    },
  });
  const flags: Record<string, unknown> = {
    coordinatorUrl: values.coordinator, tokenFile: values['token-file'], caFile: values['ca-file'], agentId: values['agent-id'],
    address: values.address, stateDir: values['state-dir'], cgroupParent: values['cgroup-parent'], runtime: values.runtime,
    reservedMemoryMb: intFlag(values['reserved-memory-mb']), bootTimeoutMs: intFlag(values['boot-timeout-ms']),
    stopGraceMs: intFlag(values['stop-grace-ms']), diagnosticsListen: values['diagnostics-listen'],
    portRange: values['port-range']?.split('-').map(Number),
  };
  for (const k of Object.keys(flags)) if (flags[k] === undefined) delete flags[k];
  const [{ resolveConfig }, { createRootLogger }, { startAgent }] = await Promise.all([import('./config.js'), import('../shared/log.js'), import('./start.js')]);
  const config = resolveConfig(values.config, flags as FileConfig);
  const log = createRootLogger({ level: config.logLevel, name: 'slipway-agent' });
  // A bug in one code path must not take the host's dynos down with the agent: this version
  // removes leftover dynos when it starts again. Log loudly and keep serving instead.
  process.on('unhandledRejection', (reason) => log.error({ err: reason }, 'unhandled promise rejection (bug): agent keeps running'));
  const agent = await startAgent(config, log);
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, stopDynos: values['stop-dynos-on-exit'] === true }, 'agent shutting down');
    agent.close({ stopDynos: values['stop-dynos-on-exit'] === true }).then(
      () => process.exit(0),
      (err: unknown) => { log.error({ err }, 'shutdown failed'); process.exit(1); },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

async function cleanup(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { 'state-dir': { type: 'string' }, 'cgroup-parent': { type: 'string' } } });
  const [{ createRootLogger }, { driverCache }, { sweepDynos }] = await Promise.all([import('../shared/log.js'), import('./runtime/factory.js'), import('./dynos/sweep.js')]);
  const log = createRootLogger({ name: 'slipway-agent' });
  const stateDir = values['state-dir'] ?? DEFAULTS.stateDir;
  // Every runtime that may have left a dyno: its handle names it; a dir without one is tried
  // with the two that need no engine (a Docker container without a handle was never started).
  const drivers = driverCache({ cgroupParent: values['cgroup-parent'] ?? DEFAULTS.cgroupParent, log });
  const removed = await sweepDynos(join(stateDir, 'dynos'), drivers, ['runc', 'lxc'], log);
  // Their records go too: a later agent start must not re-adopt (or restart) what was removed.
  const { rm } = await import('node:fs/promises');
  await rm(join(stateDir, 'agent', 'dynos'), { recursive: true, force: true });
  process.stdout.write(JSON.stringify({ removed }) + '\n');
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === 'slug') {
    const { slugCommand, SLUG_USAGE } = await import('./cli/slug.js');
    if (rest.length === 0 || rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(SLUG_USAGE);
      return;
    }
    return slugCommand(rest);
  }
  if (command === 'stack') {
    const { stackCommand, STACK_USAGE } = await import('./cli/stack.js');
    if (rest.length === 0 || rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(STACK_USAGE);
      return;
    }
    return stackCommand(rest);
  }
  if (command === 'dyno') {
    const { dynoRunCommand, DYNO_RUN_USAGE } = await import('./cli/dyno-run.js');
    const own = rest.indexOf('--') < 0 ? rest : rest.slice(0, rest.indexOf('--'));
    if (rest[0] !== 'run' || own.includes('--help') || own.includes('-h')) {
      process.stdout.write(DYNO_RUN_USAGE);
      if (rest[0] !== 'run' && !own.includes('--help') && !own.includes('-h')) process.exitCode = 2;
      return;
    }
    process.exitCode = await dynoRunCommand(rest.slice(1));
    return;
  }
  if (!command || command === '-h' || command === '--help' || rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(USAGE);
    return;
  }
  switch (command) {
    case 'serve': return serve(rest);
    case 'cleanup': return cleanup(rest);
    case 'version': process.stdout.write(`slipway-agent ${AGENT_VERSION}\n`); return;
    default:
      process.stderr.write(`CONFIG_INVALID: unknown command ${JSON.stringify(command)}\n${USAGE}`);
      process.exit(2);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const e = asSlipwayError(err);
  process.stderr.write(`${e.code}: ${e.message}\n`);
  process.exit(e.code === 'CONFIG_INVALID' ? 2 : 1);
});
