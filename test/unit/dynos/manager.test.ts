// The dyno manager's admission and drain, over the fake driver (real runtimes: test/integration).
import t from 'tap';
import { DynoManager } from '../../../agent/dynos/manager.js';
import { PortAllocator } from '../../../agent/dynos/ports.js';
import type { DynoSpec, DynoStatus } from '../../../shared/protocol.js';
import { quietLogger } from '../../helpers/host.js';
import { FakeDriver } from '../../helpers/fake-driver.js';

const MB = 1024 * 1024;
let nextPort = 36000 + Math.floor(Math.random() * 2000);

function spec(n: number, memoryMb = 512): DynoSpec {
  return {
    id: `app-worker-${n}`, app: 'app', type: 'worker', name: `worker.${n}`, command: 'run', env: {},
    size: { name: 'standard-1x', memoryMb, cpuShares: 1024, pidsLimit: 256 },
    slug: { url: 'http://127.0.0.1/x.tgz', sha256: 'a'.repeat(64) }, stack: 'busybox',
  };
}

function setup(t: { teardown(fn: () => unknown): void }, allocatableMb = 1536) {
  const driver = new FakeDriver();
  t.teardown(() => driver.close());
  const ports = new PortAllocator(nextPort, nextPort + 9, '127.0.0.1');
  nextPort += 10;
  const manager = new DynoManager({
    driver, ports, log: quietLogger(), stopGraceMs: 1000, allocatableBytes: () => allocatableMb * MB,
    slugs: { async ensure() { return { path: '/slugs/x' }; }, unpin() {} },
    stacks: { resolve: () => ({ dir: '/stacks/busybox', shell: '/bin/sh' }) } as never,
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

t.test('admission: a dyno that does not fit allocatable memory is refused and nothing starts', async (t) => {
  const s = setup(t, 1536);
  s.manager.start(spec(1));
  s.manager.start(spec(2));
  t.equal(s.manager.committedBytes(), 1024 * MB);
  t.throws(() => s.manager.start(spec(3, 1024)), { code: 'INSUFFICIENT_CAPACITY', message: /needs 1024 MB, host has 512 MB free/ });
  await s.until('app-worker-2', 'up');
  t.equal(s.driver.started.length, 2, 'the refused dyno never reached the runtime');
  t.equal(s.manager.list().length, 2);
  s.manager.start(spec(3, 512));
  t.equal(s.manager.committedBytes(), 1536 * MB, 'one that fits is admitted');
  await s.manager.stopAll();
});

t.test('drain refuses new dynos and keeps the running ones; undrain accepts again', async (t) => {
  const s = setup(t);
  s.manager.start(spec(1));
  await s.until('app-worker-1', 'up');
  t.same(s.manager.drain(), { accepting: false, stopping: 0 });
  t.equal(s.manager.accepting, false);
  t.throws(() => s.manager.start(spec(2)), { code: 'HOST_DRAINING' });
  t.same(s.manager.list().map((d) => d.state), ['up'], 'the running dyno keeps running');
  t.same(s.manager.drain(), { accepting: false, stopping: 0 }, 'draining twice is the same');
  t.same(s.manager.undrain(), { accepting: true, stopping: 0 });
  s.manager.start(spec(2));
  await s.until('app-worker-2', 'up');
  await s.manager.stopAll();
});

t.test('drain with stopDynos stops every dyno Heroku style (stopping, SIGTERM, down)', async (t) => {
  const s = setup(t);
  for (const n of [1, 2, 3]) s.manager.start(spec(n));
  for (const n of [1, 2, 3]) await s.until(`app-worker-${n}`, 'up');
  t.same(s.manager.drain({ stopDynos: true, graceMs: 200 }), { accepting: false, stopping: 3 });
  for (const n of [1, 2, 3]) await s.until(`app-worker-${n}`, 'down');
  t.same(s.driver.signals, ['SIGTERM', 'SIGTERM', 'SIGTERM']);
  t.same(s.manager.list(), [], 'a down dyno is forgotten');
  t.equal(s.manager.committedBytes(), 0);
  const order = s.events.filter((e) => e.id === 'app-worker-1').map((e) => e.state);
  t.same(order, ['starting', 'up', 'stopping', 'down']);
});
