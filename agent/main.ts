#!/usr/bin/env node
// slipway-agent: parses arguments, installs signal handlers and calls startAgent().
// Each command loads only its own modules (dynamic imports): the whole agent takes ~0.6 s to
// load, which an operator's `slipway-agent slug ls` should not pay.
import { join } from 'node:path';
import { AGENT_USAGE, CLEANUP_FLAGS, SERVE_FLAGS } from './config/commands.js';
import { loadCommandConfig, parseCommandLine } from './config/flags.js';
import { asSlipwayError } from '../shared/errors.js';

const AGENT_VERSION = '0.1.0';

async function serve(argv: string[]): Promise<void> {
  // First: what systemd put in our environment leaves it before anything is spawned (runc acts
  // on NOTIFY_SOCKET); the notifier keeps the socket for itself (agent/host/systemd-notify.ts).
  const { takeSystemdEnvironment, SystemdNotifier } = await import('./host/systemd-notify.js');
  const systemd = takeSystemdEnvironment();
  const { configPath, flags, values } = parseCommandLine(argv, SERVE_FLAGS);
  const [{ resolveConfig }, { createRootLogger }, { startAgent }] = await Promise.all([import('./config/resolve.js'), import('../shared/log.js'), import('./start.js')]);
  const config = resolveConfig(configPath, flags);
  const stopDynos = values['stop-dynos-on-exit'] === true;
  const log = createRootLogger({ level: config.logLevel, name: 'slipway-agent' });
  // A bug in one code path must not take the host's dynos down with the agent: this version
  // removes leftover dynos when it starts again. Log loudly and keep serving instead.
  process.on('unhandledRejection', (reason) => log.error({ err: reason }, 'unhandled promise rejection (bug): agent keeps running'));
  const notifier = new SystemdNotifier({ log: log.child({ component: 'systemd' }), ...(systemd.notifySocket ? { socket: systemd.notifySocket } : {}) });
  const agent = await startAgent(config, log, notifier.enabled ? { systemd: { notifier, ...(systemd.watchdogUsec ? { watchdogUsec: systemd.watchdogUsec } : {}) } } : {});
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, stopDynos }, 'agent shutting down');
    notifier.notify({ STOPPING: '1', STATUS: stopDynos ? 'stopping: stopping dynos' : 'stopping: dynos keep running' });
    agent.close({ stopDynos }).then(
      () => notifier.settled(),
    ).then(
      () => process.exit(0),
      (err: unknown) => { log.error({ err }, 'shutdown failed'); process.exit(1); },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

async function cleanup(argv: string[]): Promise<void> {
  const { config } = loadCommandConfig(argv, CLEANUP_FLAGS);
  const [{ createRootLogger }, { driverCache }, { sweepDynos }] = await Promise.all([import('../shared/log.js'), import('./runtime/factory.js'), import('./dynos/sweep.js')]);
  const log = createRootLogger({ name: 'slipway-agent' });
  // Every runtime that may have left a dyno: its handle names it; a dir without one is tried
  // with the two that need no engine (a Docker container without a handle was never started).
  const drivers = driverCache({ cgroupParent: config.cgroupParent, log });
  const removed = await sweepDynos(join(config.stateDir, 'dynos'), drivers, ['runc', 'lxc'], log);
  // Their records go too: a later agent start must not re-adopt (or restart) what was removed.
  const { rm } = await import('node:fs/promises');
  await rm(join(config.stateDir, 'agent', 'dynos'), { recursive: true, force: true });
  // And the dyno network: namespaces, leases, the nftables table, Docker's FORWARD accept and the
  // bridge (the next agent start makes them again); on a Docker host also the pause containers
  // that hold dyno namespaces, when the engine answers.
  const { HostNetwork } = await import('./network/host-network.js');
  const { dns, ...net } = config.network;
  const docker = config.runtime === 'docker' ? (await drivers('docker'))?.netnsFactory?.() : undefined;
  await new HostNetwork({ ...net, ...(dns ? { dns } : {}), ...(docker ? { netnsFactory: docker } : {}), dir: join(config.stateDir, 'network'), log }).destroy();
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
    process.stdout.write(AGENT_USAGE);
    return;
  }
  switch (command) {
    case 'serve': return serve(rest);
    case 'cleanup': return cleanup(rest);
    case 'version': process.stdout.write(`slipway-agent ${AGENT_VERSION}\n`); return;
    // The on-call commands (agent/cli/oncall/): they print their own `slipway-agent: CODE:` line.
    case 'status': case 'dynos': case 'logs': case 'why': case 'doctor': {
      const { oncallCommand } = await import('./cli/oncall/command.js');
      process.exitCode = await oncallCommand(command, rest);
      return;
    }
    default:
      process.stderr.write(`CONFIG_INVALID: unknown command ${JSON.stringify(command)}\n${AGENT_USAGE}`);
      process.exit(2);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const e = asSlipwayError(err);
  process.stderr.write(`${e.code}: ${e.message}\n`);
  process.exit(e.code === 'CONFIG_INVALID' ? 2 : 1);
});
