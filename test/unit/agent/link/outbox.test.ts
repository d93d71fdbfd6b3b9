import t from 'tap';
import { EventOutbox } from '../../../../agent/link/outbox.js';
import type { DynoStateEvent, DynoStatus } from '../../../../shared/protocol.js';

const dyno = (id: string, state: DynoStatus['state']): DynoStatus => ({ id, app: 'app1', type: 'web', name: 'web.1', state, memoryMb: 512, since: new Date(0).toISOString() });

t.test('sequence numbers increase by one and survive acks', async (t) => {
  const o = new EventOutbox();
  t.equal(o.push(null, dyno('d1', 'starting')).seq, 1);
  t.equal(o.push('starting', dyno('d1', 'up')).seq, 2);
  o.ack(1);
  t.same(o.unacked().map((e) => e.seq), [2]);
  t.equal(o.push('up', dyno('d1', 'stopping')).seq, 3);
});

t.test('acks are cumulative and stale acks are harmless', async (t) => {
  const o = new EventOutbox();
  for (let i = 0; i < 5; i++) o.push(null, dyno(`d${i}`, 'starting'));
  o.ack(3);
  t.same(o.unacked().map((e) => e.seq), [4, 5]);
  o.ack(1);
  t.same(o.unacked().map((e) => e.seq), [4, 5]);
  o.ack(99);
  t.same(o.unacked(), []);
});

t.test('over the bound, superseded events of the same dyno go first and drops are counted', async (t) => {
  const o = new EventOutbox(3);
  o.push(null, dyno('d1', 'starting'));
  o.push(null, dyno('d2', 'starting'));
  o.push('starting', dyno('d1', 'up'));
  o.push(null, dyno('d3', 'starting'));
  t.same(o.unacked().map((e) => `${(e.event as DynoStateEvent).dyno.id}:${(e.event as DynoStateEvent).dyno.state}`), ['d2:starting', 'd1:up', 'd3:starting']);
  t.equal(o.dropped, 1);
});

t.test('a host notice is numbered like a dyno event, journaled, and never shed', async (t) => {
  const written: number[] = [];
  const o = new EventOutbox(2, { append: (e) => written.push(e.seq), ack: () => undefined, rewrite: () => undefined });
  const notice = { notice: 'spot_interruption' as const, action: 'terminate' as const, deadline: '2026-12-02T05:02:00Z', noticedAt: '2026-12-02T05:00:00Z' };
  o.push(null, dyno('d1', 'starting'));
  t.match(o.pushNotice(notice), { seq: 2, event: { kind: 'host_notice', ...notice } });
  t.same(written, [1, 2], 'handed to the journal like any event');
  o.push('starting', dyno('d1', 'up'));
  o.push(null, dyno('d2', 'starting'));
  t.same(o.unacked().map((e) => e.event.kind), ['host_notice', 'dyno_state'], 'over the bound the dyno events go, the notice stays');
});
