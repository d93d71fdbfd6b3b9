#!/usr/bin/env node
// slipway-coordinator: the reference coordinator. Parses flags, installs signal handlers and
// calls startCoordinator(); everything else lives in start.ts and the modules it wires.
import { createRootLogger } from '../shared/log.js';
import { asSlipwayError } from '../shared/errors.js';
import { configFromArgs, USAGE } from './cli-args.js';
import type { CoordinatorConfig } from './config.js';
import { startCoordinator } from './start.js';

async function main(): Promise<number> {
  let config: CoordinatorConfig | 'help';
  try {
    config = configFromArgs(process.argv.slice(2), process.env);
  } catch (err) {
    const e = asSlipwayError(err);
    process.stderr.write(`${e.code}: ${e.message}\n`);
    return e.code === 'CONFIG_INVALID' ? 2 : 1;
  }
  if (config === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const log = createRootLogger({ name: 'slipway-coordinator' });
  let coordinator;
  try {
    coordinator = await startCoordinator(config, log);
  } catch (err) {
    const e = asSlipwayError(err);
    log.error({ err }, 'coordinator failed to start');
    process.stderr.write(`${e.code}: ${e.message}\n`);
    return e.code === 'CONFIG_INVALID' ? 2 : 1;
  }
  const { apiUrl, routerUrl, agentUrl } = coordinator;
  log.info({ apiUrl, routerUrl, agentUrl, coordinatorId: config.coordinatorId }, 'coordinator listening');

  const running = coordinator;
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'coordinator stopping');
      running.close().then(
        () => resolve(0),
        (err: unknown) => {
          log.error({ err }, 'coordinator failed to close cleanly');
          resolve(1);
        },
      );
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`INTERNAL: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  },
);
