// A DynoManager over the fake driver, with the transitions it reports, for unit tests of the
// manager and of what drives it (convergence). Real runtimes: test/integration.
import { DynoManager } from '../../agent/dynos/manager.js';
import { PortAllocator } from '../../agent/dynos/ports.js';
import type { DynoSpec, DynoStatus } from '../../shared/protocol.js';
import { quietLogger } from './host.js';
import { FakeDriver } from './fake-driver.js';

export const MB = 1024 * 1024;
let nextPort = 36000 + Math.floor(Math.random() * 2000);

export function spec(n: number, memoryMb = 512): DynoSpec {
  return {
    id: `app-worker-${n}`, app: 'app', type: 'worker', name: `worker.${n}`, command: 'run', env: {},
    size: { name: 'standard-1x', memoryMb, cpuShares: 1024, pidsLimit: 256 },
    slug: { url: 'http://127.0.0.1/x.tgz', sha256: 'a'.repeat(64) }, stack: 'busybox',
  };
}

export function managerSetup(t: { teardown(fn: () => unknown): void }, allocatableMb = 1536) {
  const driver = new FakeDriver();
  t.teardown(() => driver.close());
  const ports = new PortAllocator(nextPort, nextPort + 9, '127.0.0.1');
  nextPort += 10;
  const manager = new DynoManager({
    driver, ports, log: quietLogger(), stopGraceMs: 1000, allocatableBytes: () => allocatableMb * MB,
    slugs: { async ensure() { return { path: '/slugs/x' }; }, unpin() {} },
    stacks: { resolve: () => ({ dir: '/stacks/busybox', shell: '/bin/sh' }) },
    settings: { dynosDir: '/dynos', address: '127.0.0.1', dynoUser: { uid: 64000, gid: 64000 }, bootTimeoutMs: 5000, nofile: 10000 },
  });
  const events: DynoStatus[] = [];
  manager.onTransition((_from, status) => events.push(status));
  const until = async (id: string, state: string) => {
    const end = Date.now() + 5000;
    while (!events.some((e) => e.id === id && e.state === state)) {
      if (Date.now() > end) throw new Error(`${id} never ${state}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  return { driver, manager, events, until };
}

