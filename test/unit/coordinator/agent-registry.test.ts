import t from 'tap';
import type { Capacity } from '../../../shared/protocol.js';
import { AgentRegistry, type AgentLink } from '../../../coordinator/agent-registry.js';
import { MIB } from '../../../coordinator/placement.js';

const capacity = (committedMb: number, accepting = true): Capacity => ({
  memory: { totalBytes: 8192 * MIB, reservedBytes: 1024 * MIB, allocatableBytes: 4096 * MIB, committedBytes: committedMb * MIB, usedBytes: 0 },
  cpu: { cores: 4, load1: 0 }, dynoCount: 0, slugCache: { entries: 0, bytes: 0, budgetBytes: 0, freeBytes: 0, slugs: [] }, accepting,
});
const identity = (id: string) => ({ id, hostname: `${id}.internal`, address: '10.0.0.1', version: '0.1.0', runtime: 'runc' });
const link = (serial: number): AgentLink & { closed: string[] } => {
  const closed: string[] = [];
  return { serial, closed, send: () => {}, close: (_code, reason) => void closed.push(reason) };
};

t.test('a second link of the same agent replaces the first; only the current link detaches it', async (t) => {
  const registry = new AgentRegistry();
  const first = link(1);
  const second = link(2);
  t.equal(registry.attach(identity('a'), capacity(0), first), undefined);
  t.equal(registry.attach(identity('a'), capacity(0), second), first);
  t.equal(registry.detach('a', first), false, 'the replaced link closing does not disconnect the agent');
  t.equal(registry.views()[0]?.connected, true);
  t.equal(registry.detach('a', second), true);
  t.equal(registry.views()[0]?.connected, false);
});

t.test('the last applied seq survives reconnects', async (t) => {
  const registry = new AgentRegistry();
  registry.attach(identity('a'), capacity(0), link(1));
  registry.advanceSeq('a', 7);
  registry.advanceSeq('a', 3);
  registry.detach('a', link(1));
  registry.attach(identity('a'), capacity(0), link(2));
  t.equal(registry.lastSeq('a'), 7);
  t.equal(registry.lastSeq('never-seen'), 0);
});

t.test('reservations count until a capacity report after admission includes them', async (t) => {
  const registry = new AgentRegistry();
  registry.attach(identity('a'), capacity(0), link(1));
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
  const l = link(1);
  registry.attach(identity('a'), capacity(0), l);
  registry.reserve('a', 'd1', 512);
  registry.detach('a', l);
  t.match(registry.placementViews(), [{ connected: false, reservedBytes: 0 }]);
});

t.test('GET /agents view', async (t) => {
  const registry = new AgentRegistry();
  registry.attach(identity('b'), capacity(0, false), link(1));
  registry.attach(identity('a'), capacity(0), link(2));
  t.match(registry.views(), [
    { id: 'a', hostname: 'a.internal', address: '10.0.0.1', connected: true, dynoCount: 0, lastSeq: 0 },
    { id: 'b', capacity: { accepting: false } },
  ]);
  t.equal(registry.connectedCount(), 2);
});
