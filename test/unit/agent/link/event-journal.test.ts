// The event journal on a real file: unacknowledged events and their numbering survive an
// agent restart (a new EventOutbox over the reopened journal), torn and foreign lines do not
// crash anything, and the file stays small.
import t from 'tap';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EventJournal } from '../../../../agent/link/event-journal.js';
import { EventOutbox } from '../../../../agent/link/outbox.js';
import type { DynoStateEvent, DynoStatus } from '../../../../shared/protocol.js';
import { tempDir } from '../../../helpers/host.js';

const dyno = (id: string, state: DynoStatus['state']): DynoStatus => ({ id, app: 'app1', type: 'web', name: 'web.1', state, memoryMb: 512, since: new Date(0).toISOString() });
const lines = (file: string) => readFileSync(file, 'utf8').split('\n').filter(Boolean);

t.test('unacked events and the numbering survive a restart, under the same epoch', async (t) => {
  const file = join(await tempDir(t), 'agent', 'events.jsonl');
  const first = EventJournal.open(file);
  t.same({ pending: first.state.pending, lastSeq: first.state.lastSeq, skipped: first.state.skipped }, { pending: [], lastSeq: 0, skipped: 0 }, 'a new journal');
  const o = new EventOutbox(undefined, first.journal, first.state);
  o.push(null, dyno('d1', 'starting'));
  o.push('starting', dyno('d1', 'up'));
  o.push(null, dyno('d2', 'starting'));
  o.ack(1);

  // The agent dies here; a new process opens the journal.
  const again = EventJournal.open(file);
  t.equal(again.journal.epoch, first.journal.epoch, 'same epoch: the coordinator keeps its numbering');
  t.equal(again.state.lastSeq, 3);
  t.same(again.state.pending.map((e) => [e.seq, (e.event as DynoStateEvent).dyno.id, (e.event as DynoStateEvent).dyno.state]), [[2, 'd1', 'up'], [3, 'd2', 'starting']]);
  const o2 = new EventOutbox(undefined, again.journal, again.state);
  t.equal(o2.push('starting', dyno('d2', 'up')).seq, 4, 'numbering goes on');
  t.same(o2.unacked().map((e) => e.seq), [2, 3, 4], 'all of them are resent after the welcome');
  o2.ack(4);
  t.same(lines(file).length, 1, 'all acked: the file is compacted to its header');
  const compacted = EventJournal.open(file);
  t.same(compacted.state.pending, []);
  t.equal(compacted.state.lastSeq, 4, 'the numbering survives compaction: the coordinator, which holds seq 4 for this epoch, would ignore a 1');
  t.equal(new EventOutbox(undefined, compacted.journal, compacted.state).push(null, dyno('d3', 'starting')).seq, 5);
});

t.test('a torn last line is skipped; an unreadable header starts a new epoch with nothing pending', async (t) => {
  const file = join(await tempDir(t), 'events.jsonl');
  const { journal, state } = EventJournal.open(file);
  const o = new EventOutbox(undefined, journal, state);
  o.push(null, dyno('d1', 'starting'));
  appendFileSync(file, '{"e":{"type":"event","seq":2,"at"');
  const torn = EventJournal.open(file);
  t.equal(torn.state.skipped, 1);
  t.same(torn.state.pending.map((e) => e.seq), [1]);
  t.equal(torn.journal.epoch, journal.epoch);

  writeFileSync(file, 'garbage\n{"e":{"type":"event","seq":7}}\n');
  const foreign = EventJournal.open(file);
  t.not(foreign.journal.epoch, journal.epoch, 'a new epoch: the coordinator starts the numbering again');
  t.same({ lastSeq: foreign.state.lastSeq, pending: foreign.state.pending }, { lastSeq: 0, pending: [] });
  t.equal(lines(file).length, 1, 'rewritten with a fresh header');
});

t.test('over the bound, per-dyno state is coalesced and a terminal event is never dropped', async (t) => {
  const file = join(await tempDir(t), 'events.jsonl');
  const { journal, state } = EventJournal.open(file);
  const o = new EventOutbox(3, journal, state);
  o.push('stopping', dyno('d1', 'down'));
  o.push(null, dyno('d2', 'starting'));
  o.push('starting', dyno('d2', 'up'));
  o.push('stopping', dyno('d3', 'down'));
  t.same(o.unacked().map((e) => `${(e.event as DynoStateEvent).dyno.id}:${(e.event as DynoStateEvent).dyno.state}`), ['d1:down', 'd2:up', 'd3:down'], 'd2\'s superseded starting went, both downs stay');
  o.push('stopping', dyno('d4', 'down'));
  o.push('stopping', dyno('d5', 'down'));
  t.same(o.unacked().map((e) => (e.event as DynoStateEvent).dyno.id), ['d1', 'd3', 'd4', 'd5'], 'with nothing else left to drop, the bound gives way to terminal events');
  t.equal(o.dropped, 2);
  t.same(EventJournal.open(file).state.pending.map((e) => (e.event as DynoStateEvent).dyno.id), ['d1', 'd3', 'd4', 'd5'], 'the journal holds the same');
});

t.test('an unacknowledged host notice survives a restart and is resent', async (t) => {
  const file = join(await tempDir(t), 'agent', 'events.jsonl');
  const first = EventJournal.open(file);
  const o = new EventOutbox(undefined, first.journal, first.state);
  o.push(null, dyno('d1', 'up'));
  o.pushNotice({ notice: 'spot_interruption', action: 'terminate', deadline: '2026-12-02T05:02:00Z', noticedAt: '2026-12-02T05:00:00Z' });
  o.ack(1);
  const again = EventJournal.open(file);
  t.match(again.state.pending, [{ seq: 2, event: { kind: 'host_notice', notice: 'spot_interruption', deadline: '2026-12-02T05:02:00Z' } }]);
});
