// The on-disk side of the event outbox: `<stateDir>/agent/events.jsonl`, so that state changes
// the coordinator has not acknowledged survive an agent restart and are resent, under the same
// sequence numbering (the epoch is kept in the file's first line).
//
//   {"v":1,"epoch":"<uuid>","seq":N}   header: N is the last number handed out when the file was
//                                 written, so that compaction never loses the numbering
//   {"e":<Event>}                an event, appended when it happens
//   {"a":<seq>}                  a cumulative ack
//
// Appends are plain writes, not fsynced: an agent crash (the case this is for) loses nothing,
// since the page cache outlives the process; a host crash may lose the last events, and the
// hello after the reboot carries the complete state anyway. A torn last line is skipped. The
// file is rewritten (atomically) with only the pending events when it has grown past
// COMPACT_AFTER_LINES, or when nothing is pending, so it stays small.
//
// Ownership: this class knows the format and nothing of when to write. Its methods write at
// once and throw what the disk throws. In the agent, the only caller is JournalWriter
// (journal-writer.ts), which runs them off the dyno's path and retries what fails; the file
// operations go through JournalFiles so that a test can make them fail on purpose.
import { appendFileSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes, randomUUID } from 'node:crypto';
import { dirname } from 'node:path';
import type { Event } from '../../shared/protocol.js';

export const JOURNAL_VERSION = 1;
export const COMPACT_AFTER_LINES = 5_000;

/** The journal's file operations. Synchronous: each is one small write into the page cache
 * (no fsync), and JournalWriter decides when they run. */
export interface JournalFiles {
  read(file: string): string;
  append(file: string, text: string): void;
  /** Replaces the file with `text` atomically (a temporary file renamed over it). */
  replace(file: string, text: string): void;
}

export const diskJournalFiles: JournalFiles = {
  read: (file) => readFileSync(file, 'utf8'),
  append: (file, text) => appendFileSync(file, text),
  replace(file, text) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`;
    try {
      writeFileSync(tmp, text, { mode: 0o600 });
      renameSync(tmp, file);
    } catch (err) {
      // A full disk leaves a partial temporary file; retries must not pile them up.
      rmSync(tmp, { force: true });
      throw err;
    }
  },
};

export interface JournalState {
  epoch: string;
  lastSeq: number;
  /** Events after the last ack, in order. */
  pending: Event[];
  /** Lines that could not be read (a torn write, a foreign file). */
  skipped: number;
}

export class EventJournal {
  private lines = 0;
  private lastSeq = 0;

  private constructor(private readonly file: string, readonly epoch: string, private readonly files: JournalFiles) {}

  /** Reads the journal (or starts one), rewrites it compacted, and returns it with what it held. */
  static open(file: string, files: JournalFiles = diskJournalFiles): { journal: EventJournal; state: JournalState } {
    const opened = EventJournal.load(file, files);
    opened.journal.rewrite(opened.state.pending);
    return opened;
  }

  /** Reads the journal without writing: the caller writes the compacted file (rewrite) when
   * the disk lets it. A file that cannot be read counts as none: a new epoch. */
  static load(file: string, files: JournalFiles = diskJournalFiles): { journal: EventJournal; state: JournalState } {
    let text = '';
    try {
      text = files.read(file);
    } catch {
      // No journal yet: a new epoch.
    }
    const rows = text.split('\n').filter((l) => l !== '');
    let epoch: string | undefined;
    let skipped = 0;
    let lastSeq = 0;
    let headerSeq = 0;
    let acked = 0;
    const events: Event[] = [];
    rows.forEach((row, i) => {
      let j: { v?: unknown; epoch?: unknown; seq?: unknown; e?: Event; a?: unknown };
      try {
        j = JSON.parse(row) as typeof j;
      } catch {
        skipped++;
        return;
      }
      if (i === 0 && j.v === JOURNAL_VERSION && typeof j.epoch === 'string') {
        epoch = j.epoch;
        headerSeq = typeof j.seq === 'number' ? j.seq : 0;
      }
      else if (j.e && typeof j.e === 'object' && typeof j.e.seq === 'number' && j.e.type === 'event') {
        events.push(j.e);
        lastSeq = Math.max(lastSeq, j.e.seq);
      } else if (typeof j.a === 'number') acked = Math.max(acked, j.a);
      else skipped++;
    });
    // Without a readable header the numbering cannot be trusted: a new epoch, nothing pending
    // (the hello carries the state; the coordinator forgets the old numbering).
    const fresh = epoch === undefined;
    const journal = new EventJournal(file, epoch ?? randomUUID(), files);
    const state: JournalState = fresh
      ? { epoch: journal.epoch, lastSeq: 0, pending: [], skipped: rows.length === 0 ? 0 : rows.length }
      : { epoch: journal.epoch, lastSeq: Math.max(lastSeq, headerSeq), pending: events.filter((e) => e.seq > acked), skipped };
    journal.lastSeq = state.lastSeq;
    journal.lines = rows.length;
    return { journal, state };
  }

  append(ev: Event): void {
    this.write([ev]);
  }

  /** Events and a cumulative ack in one append. The reader takes the highest ack and drops
   * every event at or below it, so the order of the lines within the file does not matter. */
  write(events: readonly Event[], ackSeq?: number): void {
    const rows = events.map((e) => JSON.stringify({ e }));
    if (ackSeq !== undefined) rows.push(JSON.stringify({ a: ackSeq }));
    if (rows.length === 0) return;
    for (const e of events) this.lastSeq = Math.max(this.lastSeq, e.seq);
    this.files.append(this.file, rows.join('\n') + '\n');
    this.lines += rows.length;
  }

  /** Records a cumulative ack; compacts when the file has grown or nothing is pending. */
  ack(seq: number, pending: readonly Event[]): void {
    if (this.compactionDue(pending.length)) {
      this.rewrite(pending);
      return;
    }
    this.write([], seq);
  }

  compactionDue(pendingCount: number): boolean {
    return pendingCount === 0 || this.lines >= COMPACT_AFTER_LINES;
  }

  /** The file with only the header and `pending`, replaced atomically. `lastSeq` is the last
   * number handed out, which may be past every event written (acked before it was written). */
  rewrite(pending: readonly Event[], lastSeq = this.lastSeq): void {
    const seq = Math.max(this.lastSeq, lastSeq);
    const body = [JSON.stringify({ v: JOURNAL_VERSION, epoch: this.epoch, seq }), ...pending.map((e) => JSON.stringify({ e }))].join('\n') + '\n';
    this.files.replace(this.file, body);
    this.lastSeq = seq;
    this.lines = pending.length + 1;
  }
}
