// Keeps the event journal (event-journal.ts) in step with the outbox, off the dyno's path.
// The outbox tells it of every change (it is the outbox's OutboxJournal) and it only takes
// note: the write runs on a timer right after, one write for a burst of changes. A dyno
// transition therefore never waits on the disk and never sees a disk error.
//
// It writes what the outbox holds, not a log of calls: the events numbered since the last
// write that are still pending, and the current ack; or the whole pending set when compaction
// is due (nothing pending, the file grown, an event shed). A write that fails (ENOSPC, EIO,
// EROFS, anything) leaves the file in an unknown state (a torn line at worst), so the next
// attempt replaces the file whole with every unacked event in order: after recovery the file
// again holds what an agent restart resends. Attempts back off (JOURNAL_RETRY_*, every wait
// bounded); a failure is logged once per streak, not per event, and shown in status() (the
// link status at /v1/status) until a write succeeds. Acks and compaction go on meanwhile in
// memory and reach the file with the first write that succeeds.
//
// The price of writing after the change: an agent killed in the millisecond between a
// transition and its write has not journaled that event, as if it had died just before the
// transition; the hello after the restart carries the complete state either way.
//
// Ownership: AgentLink (agent-link.ts) builds it with its outbox (journaledOutbox below); the
// outbox is its only other caller. The file operations stay synchronous (event-journal.ts):
// each is one small write into the page cache, no fsync, run from this writer's timer.
import type { Event } from '../../shared/protocol.js';
import type { Logger } from '../../shared/log.js';
import { realClock, type Clock } from '../lib/clock.js';
import { Backoff } from './backoff.js';
import type { EventJournal, JournalState } from './event-journal.js';
import { EventOutbox, type OutboxJournal } from './outbox.js';

/** The first retry after a failed write. A full disk is often freed within seconds (the slug
 * cache evicting, a log rotated, an operator); half a second retries soon without spinning.
 * Later waits grow ×1.5 with equal jitter (backoff.ts's Backoff, as the link's redials). */
export const JOURNAL_RETRY_INITIAL_MS = 500;
/** The longest wait between attempts. A disk that heals is written again within 30 s (the
 * window in which an agent crash would not resend the unwritten events), and a disk that
 * stays broken sees at most ~2 attempts a minute, each at most one rewrite of
 * MAX_PENDING_EVENTS (~10 MB, outbox.ts). */
export const JOURNAL_RETRY_MAX_MS = 30_000;

/** The outbox over an opened journal, with the writer between them: the outbox tells the
 * writer of its changes, the writer reads the outbox when it writes. */
export function journaledOutbox(
  opened: { journal: EventJournal; state: JournalState },
  o: Omit<JournalWriterOptions, 'journal' | 'source' | 'writtenSeq'> & { maxPending?: number },
): { outbox: EventOutbox; writer: JournalWriter } {
  const { maxPending, ...options } = o;
  const built: { outbox?: EventOutbox } = {};
  const writer = new JournalWriter({ ...options, journal: opened.journal, source: () => built.outbox!, writtenSeq: opened.state.lastSeq });
  built.outbox = new EventOutbox(maxPending, writer, opened.state);
  return { outbox: built.outbox, writer };
}

/** What the writer reads from the outbox when it writes. */
export interface JournalSource {
  unacked(): readonly Event[];
  readonly lastSeq: number;
  readonly ackedSeq: number;
  readonly dropped: number;
}

export interface JournalStatus {
  ok: boolean;
  failingSince: string | null;
  lastError: string | null;
  /** Pending events not known to be in the file: an agent restart now would not resend them. */
  unwritten: number;
  /** Failed attempts since the agent started. */
  failedWrites: number;
}

/** Time, injectable so that tests run the retry path on fake time (agent/lib/clock.ts). */
export type JournalClock = Clock;

export interface JournalWriterOptions {
  journal: EventJournal;
  /** The outbox, read at write time (a function: the outbox is built after its writer). */
  source: () => JournalSource;
  /** The last seq the file held when it was opened. */
  writtenSeq: number;
  log: Logger;
  clock?: JournalClock;
  /** Jitter of the retry backoff (backoff.ts); tests fix it. */
  random?: () => number;
}

export class JournalWriter implements OutboxJournal {
  private timer: unknown;
  private dirty = true;
  /** The next write replaces the file: at open (the compaction open() used to do), after an
   * event was shed, and after any failure. */
  private replace = true;
  private writtenSeq: number;
  private writtenAck = 0;
  private writtenDropped = 0;
  /** When the streak of failures began: wall time for the status, monotonic for how long it
   * lasted (an NTP step during an outage must not lengthen or shorten it). */
  private failingSince: number | undefined;
  private failingSinceMono = 0;
  private streak = 0;
  private lastError: string | null = null;
  private failedWrites = 0;
  private closed = false;
  private readonly backoff: Backoff;
  private readonly clock: JournalClock;

  constructor(private readonly o: JournalWriterOptions) {
    this.clock = o.clock ?? realClock;
    this.backoff = new Backoff(JOURNAL_RETRY_INITIAL_MS, JOURNAL_RETRY_MAX_MS, o.random);
    this.writtenSeq = o.writtenSeq;
    this.schedule(0);
  }

  append(): void {
    this.changed();
  }

  ack(): void {
    this.changed();
  }

  rewrite(): void {
    this.replace = true;
    this.changed();
  }

  /** Writes what waits now (on a failing disk: one more attempt, then the backoff goes on).
   * Returns whether the file holds everything. */
  flush(): boolean {
    this.cancel();
    if (this.dirty) this.write();
    return this.failingSince === undefined && !this.dirty;
  }

  /** One last attempt, then no more writes (the agent is stopping). */
  close(): boolean {
    this.closed = true;
    return this.flush();
  }

  status(): JournalStatus {
    return {
      ok: this.failingSince === undefined,
      failingSince: this.failingSince === undefined ? null : new Date(this.failingSince).toISOString(),
      lastError: this.lastError,
      unwritten: this.unwritten(this.o.source().unacked()).length,
      failedWrites: this.failedWrites,
    };
  }

  private changed(): void {
    this.dirty = true;
    // While a write is due or a retry is waiting, that one takes this change along.
    if (this.timer === undefined) this.schedule(0);
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.write();
    }, ms);
  }

  private cancel(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private write(): void {
    const src = this.o.source();
    const pending = src.unacked();
    const { lastSeq, ackedSeq, dropped } = src;
    this.dirty = false;
    try {
      if (this.replace || dropped !== this.writtenDropped || this.o.journal.compactionDue(pending.length)) {
        this.o.journal.rewrite(pending, lastSeq);
      } else {
        this.o.journal.write(this.unwritten(pending), ackedSeq > this.writtenAck ? ackedSeq : undefined);
      }
    } catch (err) {
      this.failed(err as NodeJS.ErrnoException, pending);
      return;
    }
    this.replace = false;
    this.writtenSeq = lastSeq;
    this.writtenAck = ackedSeq;
    this.writtenDropped = dropped;
    if (this.failingSince !== undefined) {
      this.o.log.info({ failedForMs: Math.round(this.clock.monotonic() - this.failingSinceMono), failedWrites: this.streak, pending: pending.length }, 'event journal written again: it holds every unacknowledged event');
      this.failingSince = undefined;
      this.streak = 0;
      this.lastError = null;
      this.backoff.reset();
    }
  }

  private failed(err: NodeJS.ErrnoException, pending: readonly Event[]): void {
    this.replace = true;
    this.dirty = true;
    this.failedWrites++;
    this.streak++;
    this.lastError = err.message;
    if (this.failingSince === undefined) {
      this.failingSince = this.clock.now();
      this.failingSinceMono = this.clock.monotonic();
      this.o.log.error({ err, code: err.code, unwritten: this.unwritten(pending).length }, 'event journal write failed; events stay in memory and go out over the link as usual, and the write is retried (until it succeeds an agent restart would not resend them)');
    }
    this.schedule(this.backoff.next());
  }

  /** The pending events numbered after the last successful write (pending is in seq order). */
  private unwritten(pending: readonly Event[]): readonly Event[] {
    let i = pending.length;
    while (i > 0 && pending[i - 1]!.seq > this.writtenSeq) i--;
    return pending.slice(i);
  }
}
