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
import { appendFileSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { randomBytes, randomUUID } from 'node:crypto';
import { dirname } from 'node:path';
import type { Event } from '../../shared/protocol.js';

export const JOURNAL_VERSION = 1;
export const COMPACT_AFTER_LINES = 5_000;

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

  private constructor(private readonly file: string, readonly epoch: string) {}

  /** Reads the journal (or starts one) and returns it with what it held. */
  static open(file: string): { journal: EventJournal; state: JournalState } {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
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
    const journal = new EventJournal(file, epoch ?? randomUUID());
    const state: JournalState = fresh
      ? { epoch: journal.epoch, lastSeq: 0, pending: [], skipped: rows.length === 0 ? 0 : rows.length }
      : { epoch: journal.epoch, lastSeq: Math.max(lastSeq, headerSeq), pending: events.filter((e) => e.seq > acked), skipped };
    journal.lastSeq = state.lastSeq;
    journal.rewrite(state.pending);
    return { journal, state };
  }

  append(ev: Event): void {
    this.lastSeq = Math.max(this.lastSeq, ev.seq);
    appendFileSync(this.file, JSON.stringify({ e: ev }) + '\n');
    this.lines++;
  }

  /** Records a cumulative ack; compacts when the file has grown or nothing is pending. */
  ack(seq: number, pending: readonly Event[]): void {
    if (pending.length === 0 || this.lines >= COMPACT_AFTER_LINES) {
      this.rewrite(pending);
      return;
    }
    appendFileSync(this.file, JSON.stringify({ a: seq }) + '\n');
    this.lines++;
  }

  /** The file with only the header and `pending`, replaced atomically. */
  rewrite(pending: readonly Event[]): void {
    mkdirSync(dirname(this.file), { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.tmp-${randomBytes(4).toString('hex')}`;
    const body = [JSON.stringify({ v: JOURNAL_VERSION, epoch: this.epoch, seq: this.lastSeq }), ...pending.map((e) => JSON.stringify({ e }))].join('\n') + '\n';
    writeFileSync(tmp, body, { mode: 0o600 });
    renameSync(tmp, this.file);
    this.lines = pending.length + 1;
  }
}
