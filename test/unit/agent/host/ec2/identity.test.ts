// The instance's identity from the fake metadata service, and the 'auto' detection: off EC2
// (no DMI naming it, the default endpoint) not one request is made; with an endpoint that does
// not answer, the start loses at most the probe's bound and goes on without EC2.
import t from 'tap';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { detectEc2, dmiSaysEc2, instanceNaming, readIdentity } from '../../../../../agent/host/ec2/identity.js';
import { ImdsClient } from '../../../../../agent/host/ec2/imds.js';
import { startFakeImds } from '../../../../helpers/fake-imds.js';
import { tempDir, quietLogger } from '../../../../helpers/host.js';

t.test('identity from the instance identity document', async (t) => {
  const fake = await startFakeImds(t);
  t.same(await readIdentity(new ImdsClient({ endpoint: fake.url })), fake.identity);
  t.equal(fake.counts.withoutToken, 0);
});

t.test('DMI: Nitro, Xen and a machine elsewhere', async (t) => {
  const dir = await tempDir(t);
  const nitro = join(dir, 'nitro');
  await mkdir(join(nitro, 'devices/virtual/dmi/id'), { recursive: true });
  await writeFile(join(nitro, 'devices/virtual/dmi/id/sys_vendor'), 'Amazon EC2\n');
  const xen = join(dir, 'xen');
  await mkdir(join(xen, 'hypervisor'), { recursive: true });
  await writeFile(join(xen, 'hypervisor/uuid'), 'ec2e1916-9099-7caf-fd21-012345abcdef\n');
  const other = join(dir, 'other');
  await mkdir(join(other, 'devices/virtual/dmi/id'), { recursive: true });
  await writeFile(join(other, 'devices/virtual/dmi/id/sys_vendor'), 'QEMU\n');
  t.equal(await dmiSaysEc2(nitro), true);
  t.equal(await dmiSaysEc2(xen), true);
  t.equal(await dmiSaysEc2(other), false);
  t.equal(await dmiSaysEc2(join(dir, 'none')), false);
});

t.test("auto off EC2 with the default endpoint sends nothing and starts without EC2", async (t) => {
  const dir = await tempDir(t);
  const started = performance.now();
  t.equal(await detectEc2({ enabled: 'auto', endpoint: undefined, pollMs: 5000 }, { log: quietLogger(), sysRoot: dir }), undefined);
  t.ok(performance.now() - started < 100, 'decided from DMI alone');
});

t.test('auto with an endpoint: the fake answers, or a silent one costs at most the probe', async (t) => {
  const fake = await startFakeImds(t);
  const found = await detectEc2({ enabled: 'auto', endpoint: fake.url, pollMs: 5000 }, { log: quietLogger() });
  t.same(found?.identity, fake.identity);
  fake.silent = true;
  const started = performance.now();
  t.equal(await detectEc2({ enabled: 'auto', endpoint: fake.url, pollMs: 5000 }, { log: quietLogger() }), undefined);
  const took = performance.now() - started;
  t.ok(took < 1000, `a silent endpoint cost the start ${Math.round(took)} ms (at most ~1 s)`);
});

t.test('enabled: true fails the start when the identity cannot be read', async (t) => {
  const fake = await startFakeImds(t);
  fake.failWith = 500;
  await t.rejects(detectEc2({ enabled: true, endpoint: fake.url, pollMs: 5000 }, { log: quietLogger(), retryMs: 10 }), { code: 'IMDS_UNAVAILABLE' });
  t.equal(await detectEc2({ enabled: false, endpoint: fake.url, pollMs: 5000 }, { log: quietLogger() }), undefined);
});

t.test('on EC2 the instance names the agent and its dyno address, unless the operator did', async (t) => {
  const id = { instanceId: 'i-0123456789abcdef0', instanceType: 'm6i.large', availabilityZone: 'eu-west-1b', region: 'eu-west-1', privateIp: '10.0.3.17' };
  const configured = { agentId: 'ip-10-0-3-17', address: '192.0.2.1' };
  t.same(instanceNaming({ agentIdSet: false, addressSet: false }, id, configured), { agentId: 'i-0123456789abcdef0', address: '10.0.3.17' });
  t.same(instanceNaming({ agentIdSet: true, addressSet: false }, id, configured), { agentId: 'ip-10-0-3-17', address: '10.0.3.17' });
  t.same(instanceNaming({ agentIdSet: false, addressSet: true }, id, configured), { agentId: 'i-0123456789abcdef0', address: '192.0.2.1' });
  t.same(instanceNaming({ agentIdSet: false, addressSet: false }, undefined, configured), configured, 'off EC2: the hostname and the first uplink address');
});
