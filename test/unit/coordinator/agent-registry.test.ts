import t from 'tap';
import type { Capacity } from '../../../shared/protocol.js';
import { AgentRegistry } from '../../../coordinator/agent-registry.js';
import { MIB } from '../../../coordinator/placement.js';

const capacity = (committedMb: number, accepting = true): Capacity => ({
  memory: { totalBytes: 8192 * MIB, reservedBytes: 1024 * MIB, allocatableBytes: 4096 * MIB, committedBytes: committedMb * MIB, usedBytes: 0 },
  cpu: { cores: 4, load1: 0 }, dynoCount: 0, slugCache: { entries: 0, bytes: 0, budgetBytes: 0, freeBytes: 0, slugs: [] }, accepting,
});
const identity = (id: string) => ({ id, hostname: `${id}.internal`, address: '10.0.0.1', version: '0.1.0', runtime: 'runc' });

t.test('attach marks an agent connected, detach disconnected; lastSeq comes from the ledger', async (t) => {
  const registry = new AgentRegistry((id) => (id === 'a' ? 7 : 0));
  registry.attach(identity('a'), capacity(0));
  t.equal(registry.connected('a'), true);
  registry.detach('a');
  t.equal(registry.connected('a'), false);
  t.equal(registry.views()[0]?.lastSeq, 7);
  registry.attach(identity('a'), capacity(0));
  t.equal(registry.views()[0]?.connected, true, 'a reconnect marks it connected again');
  t.equal(registry.connected('never-seen'), false);
});

t.test('reservations count until a capacity report after admission includes them', async (t) => {
  const registry = new AgentRegistry();
  registry.attach(identity('a'), capacity(0));
  registry.reserve('a', 'd1', 512);
  registry.reserve('a', 'd2', 512);
  t.equal(registry.placementViews()[0]?.reservedBytes, 1024 * MIB);
  registry.admit('a', 'd1');
  registry.setCapacity('a', capacity(512));
  const view = registry.placementViews()[0];
  t.equal(view?.committedBytes, 512 * MIB, 'd1 is now in the report');
  t.equal(view?.reservedBytes, 512 * MIB, 'd2 is still waiting for its answer');
  registry.release('a', 'd2');
  t.equal(registry.placementViews()[0]?.reservedBytes, 0);
});

t.test('a closed link drops the reservations still waiting for an answer', async (t) => {
  const registry = new AgentRegistry();
  registry.attach(identity('a'), capacity(0));
  registry.reserve('a', 'd1', 512);
  registry.detach('a');
  t.match(registry.placementViews(), [{ connected: false, reservedBytes: 0 }]);
});

t.test('GET /agents view', async (t) => {
  const registry = new AgentRegistry();
  registry.attach(identity('b'), capacity(0, false));
  registry.attach(identity('a'), capacity(0));
  t.match(registry.views(), [
    { id: 'a', hostname: 'a.internal', address: '10.0.0.1', connected: true, dynoCount: 0, lastSeq: 0 },
    { id: 'b', capacity: { accepting: false } },
  ]);
  t.equal(registry.connectedCount(), 2);
});
