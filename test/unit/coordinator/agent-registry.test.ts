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

t.test('host notices: an interruption stays, a rebalance comes and goes with the capacity report', async (t) => {
  const registry = new AgentRegistry();
  registry.attach(identity('a'), capacity(0));
  const rebalance = { notice: 'rebalance' as const, noticeTime: '2026-12-02T05:00:00Z', noticedAt: '2026-12-02T05:00:01Z' };
  registry.setNotice('a', rebalance);
  t.match(registry.placementViews()[0], { rebalance: true, interrupted: false });
  registry.setCapacity('a', { ...capacity(0), notices: [] });
  t.match(registry.placementViews()[0], { rebalance: false }, 'the agent no longer shows it');
  const spot = { notice: 'spot_interruption' as const, action: 'terminate' as const, deadline: '2026-12-02T05:02:00Z', noticedAt: '2026-12-02T05:00:00Z' };
  registry.setCapacity('a', { ...capacity(0, false), notices: [spot, rebalance] });
  t.match(registry.placementViews()[0], { interrupted: true, rebalance: true, accepting: false });
  t.same(registry.interruption('a'), spot);
  registry.setCapacity('a', { ...capacity(0), notices: [] });
  t.same(registry.interruption('a'), spot, 'EC2 does not take an interruption back');
  registry.setNotice('a', { notice: 'terminating', noticedAt: '2026-12-02T05:00:05Z' });
  t.same(registry.interruption('a'), spot, 'a scale-in does not replace the spot deadline');
  t.same(registry.views()[0]?.notices.map((n) => n.notice), ['spot_interruption']);
  registry.attach(identity('b'), { ...capacity(0), notices: [{ notice: 'terminating', noticedAt: '2026-12-02T05:00:05Z' }] });
  t.equal(registry.interruption('b')?.notice, 'terminating', "a hello's capacity carries it too (a restarted coordinator)");
});

t.test('the store hears a hello, a notice and what placement reads; not every load average', async (t) => {
  const writes: { committed: number; load1: number }[] = [];
  const registry = new AgentRegistry(() => 0, (w) => {
    if (w.kind === 'agent') writes.push({ committed: w.agent.capacity.memory.committedBytes / MIB, load1: w.agent.capacity.cpu.load1 });
  });
  registry.attach(identity('a'), capacity(0));
  t.equal(writes.length, 1, 'the first hello is written');
  for (let i = 1; i <= 5; i++) registry.setCapacity('a', { ...capacity(0), cpu: { cores: 4, load1: i } });
  t.equal(writes.length, 1, 'five reports that change only the load average are not');
  registry.setCapacity('a', capacity(512));
  t.same(writes.at(-1), { committed: 512, load1: 0 }, 'committed memory changed: written');
  registry.setCapacity('a', capacity(512, false));
  t.equal(writes.length, 3, 'accepting changed: written');
  registry.setNotice('a', { notice: 'rebalance', noticeTime: '2026-12-03T00:00:00Z', noticedAt: '2026-12-03T00:00:01Z' });
  t.equal(writes.length, 4, 'a notice is written');
  registry.attach(identity('a'), capacity(512, false));
  t.equal(writes.length, 5, 'a hello is always written, unchanged or not');
});

t.test('placement views are kept between decisions and follow every change', async (t) => {
  const registry = new AgentRegistry();
  registry.attach(identity('a'), capacity(0));
  const first = registry.placementViews();
  t.equal(registry.placementViews(), first, 'nothing changed: the same views, nothing built');
  registry.reserve('a', 'd1', 256);
  t.equal(registry.placementViews()[0]?.reservedBytes, 256 * MIB, 'a reservation shows in the next decision');
  registry.setCapacity('a', capacity(1024, false));
  t.match(registry.placementViews()[0], { committedBytes: 1024 * MIB, accepting: false }, 'a capacity report too');
  registry.detach('a');
  t.equal(registry.placementViews()[0]?.connected, false, 'and a closed link');
  registry.attach(identity('b'), capacity(0));
  t.same(registry.placementViews().map((v) => v.id).sort(), ['a', 'b'], 'a new agent joins the views');
});
