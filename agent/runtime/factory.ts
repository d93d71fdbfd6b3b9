// The one place that turns the `runtime` config key into a driver. Each driver's module is
// loaded on demand: a runc host never loads dockerode, a Docker host never looks for conmon.
import type { Logger } from '../../shared/log.js';
import { SlipwayError } from '../../shared/errors.js';
import { RUNTIME_NAMES, type RuntimeDriver, type RuntimeName } from './driver.js';

export interface DriverOptions {
  cgroupParent: string;
  log: Logger;
  /** Docker engine socket (default /var/run/docker.sock). */
  dockerSocket?: string;
  /** A stack's directory by name (StackStore.resolve): Docker makes each dyno's pause container
   * (docker/pause.ts) from its stack image before the start. */
  stackDir?: (stack: string) => string;
}

export function isRuntimeName(s: string): s is RuntimeName {
  return (RUNTIME_NAMES as readonly string[]).includes(s);
}

export async function createDriver(name: string, opts: DriverOptions): Promise<RuntimeDriver> {
  switch (name) {
    case 'runc': {
      const { RuncDriver } = await import('./runc/driver.js');
      return new RuncDriver({ cgroupParent: opts.cgroupParent, log: opts.log });
    }
    case 'lxc': {
      const { LxcDriver } = await import('./lxc/driver.js');
      return new LxcDriver({ cgroupParent: opts.cgroupParent, log: opts.log });
    }
    case 'docker': {
      const { DockerDriver } = await import('./docker/driver.js');
      return new DockerDriver({ cgroupParent: opts.cgroupParent, log: opts.log, ...(opts.dockerSocket ? { socketPath: opts.dockerSocket } : {}), ...(opts.stackDir ? { stackDir: opts.stackDir } : {}) });
    }
    default:
      throw new SlipwayError('CONFIG_INVALID', `unknown runtime ${JSON.stringify(name)}: one of ${RUNTIME_NAMES.join(', ')}`);
  }
}

/** Drivers made on first use and kept: for sweeping and recovering dynos whose handle names a
 * runtime other than the configured one (the host's config changed between runs). */
export function driverCache(opts: DriverOptions, first?: RuntimeDriver): (name: RuntimeName) => Promise<RuntimeDriver | undefined> {
  const made = new Map<RuntimeName, Promise<RuntimeDriver | undefined>>();
  if (first) made.set(first.name, Promise.resolve(first));
  return (name) => {
    let d = made.get(name);
    if (!d) {
      d = createDriver(name, opts).catch((err: unknown) => {
        opts.log.warn({ err, runtime: name }, 'runtime driver unavailable');
        return undefined;
      });
      made.set(name, d);
    }
    return d;
  };
}
