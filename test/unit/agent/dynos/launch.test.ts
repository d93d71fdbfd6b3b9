// The launcher's cleanup when a destroy fails (EMFILE at the agent's descriptor limit, a busy
// mount): the container it could not destroy still holds the dyno's container id and dir, so it
// is destroyed before the dyno's next container is created (a launch fails while it cannot be,
// and the crash restart tries again), and by the next remove(). The real case is
// test/integration/agent/host/pressure-fd-limit.test.ts; here the fake driver fails on purpose.
import t from 'tap';
import { Incarnation, Launcher } from '../../../../agent/dynos/launch.js';
import { PortAllocator } from '../../../../agent/dynos/ports.js';
import type { DynoHandle } from '../../../../agent/runtime/driver.js';
import type { DynoSpec } from '../../../../shared/protocol.js';
import { FakeDriver } from '../../../helpers/fake-driver.js';
import { quietLogger } from '../../../helpers/host.js';

class FlakyDestroyDriver extends FakeDriver {
  failDestroys = 0;
  override async destroy(h: DynoHandle) {
    if (this.failDestroys > 0) {
      this.failDestroys -= 1;
      throw Object.assign(new Error('spawn /usr/sbin/runc EMFILE'), { code: 'EMFILE' });
    }
    await super.destroy(h);
  }
}

const spec: DynoSpec = {
  id: 'app-worker-1-abcd', app: 'app', type: 'worker', name: 'worker.1', command: 'run', env: {},
  size: { name: 'standard-1x', memoryMb: 512, cpuShares: 1024, pidsLimit: 256 },
  slug: { url: 'http://127.0.0.1/x.tgz', sha256: 'a'.repeat(64) }, stack: 'busybox',
};

function setup() {
  const driver = new FlakyDestroyDriver();
  const slugs = { ensure: async () => ({ path: '/slugs/a' }), unpin: () => undefined, has: () => true };
  const stacks = { resolve: () => ({ dir: '/stacks/busybox', shell: '/bin/sh', name: 'busybox' }) };
  const launcher = new Launcher(spec, { driver, slugs, stacks, ports: new PortAllocator(20000, 20010) },
    { dynosDir: '/dynos', dynoUser: { uid: 64000, gid: 64000 }, nofile: 10000, r15Multiple: 2, address: '127.0.0.1' }, quietLogger());
  return { driver, launcher };
}

t.test('a container whose destroy failed is destroyed before the next one starts', async (t) => {
  const { driver, launcher } = setup();
  const first = new Incarnation(1, false);
  t.equal(await launcher.launch(first, () => true, async () => undefined), true);
  driver.failDestroys = 2;
  await launcher.remove(first);
  t.same(driver.destroyed, [], 'the first destroy failed (logged, not thrown)');

  const second = new Incarnation(2, false);
  await t.rejects(launcher.launch(second, () => true, async () => undefined), { code: 'EMFILE' }, 'while the leftover cannot be destroyed, no new container is created on top of it');
  t.equal(driver.started.length, 1);
  await launcher.remove(second);
  t.same(driver.destroyed, [spec.id], "the failed launch's cleanup destroyed the leftover once descriptors were back");

  const third = new Incarnation(3, false);
  t.equal(await launcher.launch(third, () => true, async () => undefined), true, 'the next start goes ahead');
  t.equal(driver.started.length, 2);
  await launcher.remove(third);
  t.same(driver.destroyed, [spec.id, spec.id]);
});

t.test('a leftover is destroyed by the launch itself when nothing else removed it', async (t) => {
  const { driver, launcher } = setup();
  const first = new Incarnation(1, false);
  await launcher.launch(first, () => true, async () => undefined);
  driver.failDestroys = 1;
  await launcher.remove(first);
  const second = new Incarnation(2, false);
  t.equal(await launcher.launch(second, () => true, async () => undefined), true);
  t.same(driver.destroyed, [spec.id], 'destroyed before the new container was created');
  t.equal(driver.started.length, 2);
});
