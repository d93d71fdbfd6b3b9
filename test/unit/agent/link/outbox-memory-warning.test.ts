// The memory_warning event in the outbox (outbox.ts): numbered and journaled like every event,
// valid by the protocol's schema, and the first to go from a full outbox after superseded dyno
// states (it is advisory; a dyno's latest state and a host notice are not).
import t from 'tap';
import { EventOutbox } from '../../../../agent/link/outbox.js';
import { decodeAgentMessage, type DynoStatus, type MemoryWarning } from '../../../../shared/protocol.js';

const dyno = (id: string, state: DynoStatus['state']): DynoStatus => ({ id, app: 'app1', type: 'web', name: 'web.1', state, memoryMb: 512, since: new Date(0).toISOString() });
const warning: MemoryWarning = {
  dynoId: 'd1', app: 'app1', name: 'web.1', projectedMs: 360_000, workingSetBytes: 800 * 1024 * 1024, limitBytes: 1024 * 1024 * 1024, slopeBytesPerSec: 650_000,
};

t.test('a memory warning is numbered, journaled and a valid event', async (t) => {
  const written: number[] = [];
  const o = new EventOutbox(10, { append: (e) => written.push(e.seq), ack: () => undefined, rewrite: () => undefined });
  o.push(null, dyno('d1', 'up'));
  const ev = o.pushMemoryWarning({ ...warning, pressureSome10: 12.5 });
  t.match(ev, { type: 'event', seq: 2, event: { kind: 'memory_warning', ...warning, pressureSome10: 12.5 } });
  t.same(written, [1, 2]);
  t.ok(decodeAgentMessage(JSON.stringify(ev)).ok, 'the coordinator accepts it');
  t.ok(decodeAgentMessage(JSON.stringify(o.pushMemoryWarning(warning))).ok, 'without PSI (cgroup v1) too');
  const bad = decodeAgentMessage(JSON.stringify({ ...ev, event: { ...ev.event, extra: 1 } }));
  t.match(bad, { ok: false, error: { code: 'PROTOCOL_SCHEMA_VIOLATION' } }, 'strict like every event');
});

t.test('over the bound: superseded states first, then memory warnings, never a latest state or a notice', async (t) => {
  const o = new EventOutbox(3);
  o.pushMemoryWarning(warning);
  o.pushNotice({ notice: 'rebalance', noticedAt: '2026-12-02T05:00:00Z' });
  o.push(null, dyno('d1', 'starting'));
  o.push('starting', dyno('d1', 'up'));
  t.same(o.unacked().map((e) => e.event.kind), ['memory_warning', 'host_notice', 'dyno_state'], 'the superseded starting went');
  o.push(null, dyno('d2', 'starting'));
  t.same(o.unacked().map((e) => e.event.kind), ['host_notice', 'dyno_state', 'dyno_state'], 'then the warning');
  t.equal(o.dropped, 2);
});
