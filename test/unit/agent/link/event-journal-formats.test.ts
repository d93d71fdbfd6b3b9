// The event journal on disk (agent/link/event-journal.ts): every version's fixture loads with
// its epoch, numbering and unacknowledged events, and the writer's compacted copy reads back
// the same, so an upgraded agent resends what an older one left unacknowledged.
import t from 'tap';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventJournal, JOURNAL_VERSION } from '../../../../agent/link/event-journal.js';
import type { Event } from '../../../../shared/protocol.js';
import { stateFixtures } from '../../../helpers/state-fixtures.js';

const fixtures = stateFixtures((n) => n === 'events.jsonl');

t.test('every version of the event journal loads, and its compacted copy round-trips', async (t) => {
  t.ok(fixtures.some((f) => f.version === 'v1'), 'the v1 fixture is there');
  for (const f of fixtures) {
    const dir = mkdtempSync(join(tmpdir(), 'slipway-journal-fmt-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'events.jsonl');
    copyFileSync(f.path, file);
    const rows = f.text.trim().split('\n').map((l) => JSON.parse(l) as { epoch?: string; seq?: number; e?: Event; a?: number });
    const header = rows[0]!;
    const acked = Math.max(...rows.map((r) => r.a ?? 0));
    const events = rows.flatMap((r) => (r.e ? [r.e] : []));
    const { journal, state } = EventJournal.load(file);
    t.equal(journal.epoch, header.epoch, `${f.version}: the epoch is kept`);
    t.equal(state.lastSeq, Math.max(header.seq ?? 0, ...events.map((e) => e.seq)), `${f.version}: the numbering goes on from the last seq`);
    t.same(state.pending, events.filter((e) => e.seq > acked), `${f.version}: exactly the unacknowledged events, in order`);
    t.equal(state.skipped, 0, `${f.version}: no line is skipped`);
    t.equal(readFileSync(file, 'utf8'), f.text, `${f.version}: loading writes nothing`);

    journal.rewrite(state.pending);
    const saved = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as unknown);
    t.same(saved[0], { v: JOURNAL_VERSION, epoch: header.epoch, seq: state.lastSeq }, `${f.version}: saved with a version ${JOURNAL_VERSION} header`);
    const again = EventJournal.load(file);
    t.equal(again.journal.epoch, journal.epoch, `${f.version}: the saved copy keeps the epoch`);
    t.same(again.state, state, `${f.version}: the saved copy reads back the same`);
  }
});
