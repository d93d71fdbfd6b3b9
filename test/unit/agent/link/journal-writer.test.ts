// The journal writer on a disk that fails on purpose (test/helpers/failing-journal-files.ts)
// and on fake time: writes happen after the change, not inside it; a failing write is retried
// with bounded waits, logged once per streak and shown in the status; after recovery the file
// holds every unacked event in order, so a restarted agent would resend them all.
import t from 'tap';
import { join } from 'node:path';
import { readdirSync, readFileSync } from 'node:fs';
import { EventJournal } from '../../../../agent/link/event-journal.js';
import { JOURNAL_RETRY_MAX_MS, journaledOutbox } from '../../../../agent/link/journal-writer.js';
import type { DynoStatus } from '../../../../shared/protocol.js';
import { FailingJournalFiles } from '../../../helpers/failing-journal-files.js';
import { FakeClock } from '../../../helpers/fake-clock.js';
import { tempDir } from '../../../helpers/host.js';
import { captureLog, LEVEL } from '../../../helpers/log-capture.js';

const dyno = (id: string, state: DynoStatus['state']): DynoStatus => ({ id, app: 'app1', type: 'web', name: 'web.1', state, memoryMb: 512, since: new Date(0).toISOString() });

async function setup(t: { teardown(fn: () => unknown): void }) {
  const dir = await tempDir(t);
  const file = join(dir, 'agent', 'events.jsonl');
  const files = new FailingJournalFiles();
  const clock = new FakeClock();
  const logged = captureLog();
  const open = () => {
    const opened = EventJournal.load(file, files);
    return { ...opened, ...journaledOutbox(opened, { log: logged.log, clock, random: () => 1 }) };
  };
  /** What a restarted agent would resend: the file as the next process reads it. */
  const onDisk = () => EventJournal.load(file).state;
  return { dir, file, files, clock, logged, open, onDisk };
}

t.test('the write happens after the change, one append for a burst', async (t) => {
  const s = await setup(t);
  const { writer, outbox } = s.open();
  s.clock.tick(0);
  t.equal(s.files.calls.replace, 1, 'opening compacts the file (as EventJournal.open did)');
  outbox.push(null, dyno('d1', 'starting'));
  outbox.push('starting', dyno('d1', 'up'));
  outbox.push(null, dyno('d2', 'starting'));
  t.equal(s.files.calls.append, 0, 'nothing is written inside push');
  t.equal(writer.status().unwritten, 3);
  s.clock.tick(0);
  t.equal(s.files.calls.append, 1, 'one write for the burst');
  t.same(s.onDisk().pending.map((e) => e.seq), [1, 2, 3]);
  outbox.ack(2);
  s.clock.tick(0);
  t.same(s.onDisk().pending.map((e) => e.seq), [3], 'the ack reaches the file');
  t.equal(s.files.calls.append, 2, 'as an appended ack line, not a rewrite');
  outbox.ack(3);
  s.clock.tick(0);
  t.equal(readFileSync(s.file, 'utf8').split('\n').filter(Boolean).length, 1, 'nothing pending: compacted to the header');
  t.same({ lastSeq: s.onDisk().lastSeq, pending: s.onDisk().pending }, { lastSeq: 3, pending: [] });
  t.same(writer.status(), { ok: true, failingSince: null, lastError: null, unwritten: 0, failedWrites: 0 });
  t.equal(s.clock.pending, 0, 'no timer left behind');
});

t.test('ENOSPC on append: retried with bounded waits, logged once, nothing lost, in order', async (t) => {
  const s = await setup(t);
  const { writer, outbox } = s.open();
  outbox.push(null, dyno('d1', 'starting'));
  s.clock.tick(0);
  t.same(s.onDisk().pending.map((e) => e.seq), [1]);

  s.files.failAppend = 'ENOSPC';
  s.files.failReplace = 'ENOSPC';
  s.files.tornAppend = true;
  const failingAt = s.clock.now();
  outbox.push('starting', dyno('d1', 'up'));
  outbox.push('up', dyno('d1', 'crashed'));
  s.clock.tick(0);
  const st = writer.status();
  t.equal(st.ok, false);
  t.equal(st.failingSince, new Date(failingAt).toISOString());
  t.match(st.lastError, /ENOSPC/);
  t.equal(st.unwritten, 2, 'the two events after the last good write');
  // A long outage: many events, an ack, and many retries.
  for (let i = 0; i < 50; i++) {
    outbox.push(i % 2 ? 'crashed' : 'starting', dyno('d1', i % 2 ? 'starting' : 'up'));
    s.clock.tick(1_000);
  }
  outbox.ack(2);
  s.clock.tick(10 * 60_000);
  t.equal(writer.status().unwritten, 51, 'seq 3..53 pending and not on disk');
  t.ok(writer.status().failedWrites > 20, `retried ${writer.status().failedWrites} times`);
  const retries = s.clock.delays.filter((d) => d > 0);
  t.ok(retries.every((d) => d <= JOURNAL_RETRY_MAX_MS), 'every wait is bounded');
  t.ok(retries.some((d) => d === JOURNAL_RETRY_MAX_MS), 'and backs off up to the cap');
  t.same(retries.slice(0, 3), [500, 750, 1125], 'backing off from the first retry');
  t.equal(s.logged.at(LEVEL.error).length, 1, 'one log line for the whole streak, not one per event or retry');
  t.equal(s.logged.at(LEVEL.error)[0]!.code, 'ENOSPC');
  t.same(readdirSync(join(s.dir, 'agent')), ['events.jsonl'], 'failed replaces leave no temporary files');

  s.files.failAll(undefined);
  s.clock.tick(JOURNAL_RETRY_MAX_MS);
  t.same(writer.status(), { ok: true, failingSince: null, lastError: null, unwritten: 0, failedWrites: writer.status().failedWrites }, 'status cleared');
  t.equal(s.logged.at(LEVEL.info).filter((r) => /written again/.test(r.msg)).length, 1, 'the recovery is logged once');
  const disk = s.onDisk();
  t.equal(disk.skipped, 0, 'the torn line is gone: the file was replaced whole');
  t.same(disk.pending.map((e) => e.seq), outbox.unacked().map((e) => e.seq), 'every unacked event, in order');
  t.same(disk.pending.map((e) => e.seq), Array.from({ length: 51 }, (_, i) => i + 3));
  t.equal(disk.lastSeq, 53);

  // The next agent process resends them under the same numbering.
  const again = s.open();
  t.same(again.outbox.unacked(), outbox.unacked());
  t.equal(again.outbox.push(null, dyno('d2', 'starting')).seq, 54);
  again.writer.close();
  writer.close();
});

t.test('EIO on rewrite: acks and compaction go on in memory and reach the file on recovery', async (t) => {
  const s = await setup(t);
  const { writer, outbox } = s.open();
  for (let i = 1; i <= 4; i++) outbox.push(null, dyno(`d${i}`, 'starting'));
  s.clock.tick(0);
  s.files.failReplace = 'EIO';
  outbox.ack(4);
  s.clock.tick(0);
  t.equal(writer.status().ok, false, 'the compaction failed');
  t.match(writer.status().lastError, /EIO/);
  t.same(outbox.unacked(), [], 'the ack took effect in memory');
  outbox.push(null, dyno('d5', 'starting'));
  outbox.push('starting', dyno('d5', 'up'));
  outbox.ack(5);
  t.equal(writer.status().unwritten, 1);
  s.clock.tick(5_000);
  t.equal(s.logged.at(LEVEL.error).length, 1);
  s.files.failReplace = undefined;
  s.clock.tick(JOURNAL_RETRY_MAX_MS);
  t.equal(writer.status().ok, true);
  const disk = s.onDisk();
  t.same(disk.pending.map((e) => e.seq), [6], 'only what is unacked');
  t.equal(disk.lastSeq, 6, 'the header keeps the numbering, events acked before they were written included');
  writer.close();
});

t.test('a read-only disk at start: the agent opens the journal anyway and writes it later', async (t) => {
  const s = await setup(t);
  const first = s.open();
  first.outbox.push(null, dyno('d1', 'starting'));
  first.writer.close();
  s.files.failAll('EROFS');
  const { writer, outbox, state } = s.open();
  t.same(state.pending.map((e) => e.seq), [1], 'what the last run left is read');
  s.clock.tick(0);
  t.match(writer.status().lastError, /EROFS/);
  outbox.push('starting', dyno('d1', 'up'));
  t.equal(writer.close(), false, 'close makes one last attempt and says it failed');
  t.equal(s.clock.pending, 0, 'and leaves no timer');
  s.files.failAll(undefined);
  t.same(s.onDisk().pending.map((e) => e.seq), [1], 'the file is as the last good write left it');
});

// The retries wait on timers (monotonic); how long the outage lasted is measured on the
// monotonic clock too, and the status names its start in wall time (shown to people). An NTP
// step during the outage (chrony's `makestep` at boot) changes neither.
for (const stepMs of [3_600_000, -3_600_000]) {
  t.test(`a wall clock step of ${stepMs > 0 ? '+' : '-'}1 h during a failing streak: the backoff keeps its waits and the outage its length`, async (t) => {
    const s = await setup(t);
    const { writer, outbox } = s.open();
    s.clock.tick(0);
    s.files.failAll('ENOSPC');
    const failingAt = s.clock.now();
    outbox.push(null, dyno('d1', 'starting'));
    s.clock.tick(0);
    t.equal(writer.status().failingSince, new Date(failingAt).toISOString());
    s.clock.stepWall(stepMs);
    t.equal(writer.status().failingSince, new Date(failingAt).toISOString(), 'the status keeps the wall time the streak began');
    s.clock.tick(500);
    s.clock.tick(750);
    t.same(s.clock.delays.filter((d) => d > 0), [500, 750, 1125], 'the retries back off as without the step');
    t.equal(writer.status().failedWrites, 3);
    s.files.failAll(undefined);
    s.clock.tick(1124);
    t.equal(writer.status().ok, false, 'the third retry is not early');
    s.clock.tick(1);
    t.equal(writer.status().ok, true, 'written again at the third retry');
    const recovered = s.logged.at(LEVEL.info).filter((r) => /written again/.test(r.msg));
    t.equal(recovered.length, 1);
    t.equal(recovered[0]!.failedForMs, 500 + 750 + 1125, 'the outage lasted 2375 ms, not an hour more or less');
    writer.close();
  });
}
