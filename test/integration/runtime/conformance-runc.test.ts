// The runtime conformance suite (fixtures/conformance.ts) against real runc under conmon.
import { execFileSync } from 'node:child_process';
import { RuncDriver } from '../../../agent/runtime/runc/driver.js';
import { quietLogger } from '../../helpers/host.js';
import { conformance } from './fixtures/conformance.js';

conformance({
  name: 'runc',
  make: async (cgroupParent) => new RuncDriver({ cgroupParent, log: quietLogger() }),
  containersOf: (dynoId) => execFileSync('runc', ['list', '-q'], { encoding: 'utf8' }).split('\n').filter((c) => c === RuncDriver.containerId(dynoId)),
});
