// The runtime conformance suite (fixtures/conformance.ts) against real runc under conmon.
import { RuncDriver } from '../../../../../agent/runtime/runc/driver.js';
import { quietLogger, runcContainers } from '../../../../helpers/host.js';
import { conformance } from '../fixtures/conformance.js';

conformance({
  name: 'runc',
  make: async (cgroupParent) => new RuncDriver({ cgroupParent, log: quietLogger() }),
  containersOf: (dynoId) => runcContainers(RuncDriver.containerId(dynoId)).filter((c) => c === RuncDriver.containerId(dynoId)),
});
