// Address leases (leases.ts): one holder per address across processes (O_EXCL), and files that
// are not leases the agent wrote are listed as nobody's, so that reconcile removes them.
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Leases } from '../../../../agent/network/leases.js';
import { tempDir } from '../../../helpers/host.js';

t.test('take, list, hold, drop', async (t) => {
  const leases = new Leases(join(await tempDir(t), 'leases'));
  await leases.init();
  const lease = { address: '100.72.0.2', netns: 'slipway0-0123abcd', hostVeth: 'sw0123456789', pid: 42 };
  t.equal(await leases.take(lease), true);
  t.equal(await leases.take({ ...lease, pid: 43 }), false, 'a second taker is refused');
  t.same(await leases.list(), [lease]);
  await leases.hold({ ...lease, pid: 44 });
  t.same(await leases.list(), [{ ...lease, pid: 44 }], 'held by the new process');
  await leases.drop(lease.address);
  t.same(await leases.list(), []);
});

t.test('a file with names iproute2 would be handed but the agent never makes is nobody\'s', async (t) => {
  const dir = join(await tempDir(t), 'leases');
  const leases = new Leases(dir);
  await leases.init();
  await writeFile(join(dir, '100.72.0.3'), JSON.stringify({ netns: 'x\nlink del eth0', hostVeth: 'sw0123456789', pid: 1 }));
  await writeFile(join(dir, '100.72.0.4'), 'not json');
  t.same(await leases.list(), [
    { address: '100.72.0.3', netns: '', hostVeth: '', pid: 0 },
    { address: '100.72.0.4', netns: '', hostVeth: '', pid: 0 },
  ]);
});
