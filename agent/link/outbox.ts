// Events waiting for the coordinator's cumulative ack. Every event gets the next per-agent
// sequence number and stays here until acknowledged; after a reconnect everything still
// pending is resent in order. With a journal the pending events and the numbering also
// survive an agent restart.
//
// Ownership: the outbox is the only holder of the numbering and of what is pending; it tells
// its journal of every change. In the agent that journal is JournalWriter (journal-writer.ts),
// which only takes note and never throws, so a push never fails on the disk; EventJournal
// (event-journal.ts) can also be given directly, writing at once (tools and tests).
import type { DynoStateName, DynoStatus, Event, HostNotice, MemoryWarning } from '../../shared/protocol.js';
import type { JournalState } from './event-journal.js';

/** At ~1 KB an event, 10,000 pending events bound the outbox near 10 MB during a long outage. */
export const MAX_PENDING_EVENTS = 10_000;

/** What the outbox tells its journal after each change (EventJournal and JournalWriter). */
export interface OutboxJournal {
  append(ev: Event): void;
  ack(seq: number, pending: readonly Event[]): void;
  rewrite(pending: readonly Event[]): void;
}

export class EventOutbox {
  private seq = 0;
  private pending: Event[] = [];
  private droppedCount = 0;
  private ackedTo = 0;

  constructor(private readonly max = MAX_PENDING_EVENTS, private readonly journal?: OutboxJournal, restored?: JournalState) {
    if (restored) {
      this.seq = restored.lastSeq;
      this.pending = [...restored.pending];
    }
  }

  push(from: DynoStateName | null, dyno: DynoStatus, at = new Date()): Event {
    return this.add({ kind: 'dyno_state', from, dyno }, at);
  }

  /** A host notice (agent/host/ec2/host-signals.ts): numbered and journaled like a dyno's
   * state, never shed (the coordinator must learn that the host goes away). */
  pushNotice(notice: HostNotice, at = new Date()): Event {
    return this.add({ kind: 'host_notice', ...notice }, at);
  }

  /** A dyno's memory heading for R15 (memory-watch-hook.ts): numbered and journaled, but
   * advisory, so a full outbox may shed it like a superseded dyno state. */
  pushMemoryWarning(warning: MemoryWarning, at = new Date()): Event {
    return this.add({ kind: 'memory_warning', ...warning }, at);
  }

  private add(event: Event['event'], at: Date): Event {
    const ev: Event = { type: 'event', seq: ++this.seq, at: at.toISOString(), event };
    this.pending.push(ev);
    this.journal?.append(ev);
    if (this.pending.length > this.max) {
      this.shed();
      this.journal?.rewrite(this.pending);
    }
    return ev;
  }

  /** Cumulative: drops every event with seq <= `seq`. */
  ack(seq: number): void {
    if (this.pending.length === 0 || seq < this.pending[0]!.seq) return;
    this.pending = this.pending.filter((e) => e.seq > seq);
    this.ackedTo = Math.max(this.ackedTo, seq);
    this.journal?.ack(seq, this.pending);
  }

  unacked(): readonly Event[] {
    return this.pending;
  }

  get lastSeq(): number {
    return this.seq;
  }

  /** The highest cumulative ack that removed something (0: none since this process began). */
  get ackedSeq(): number {
    return this.ackedTo;
  }

  get dropped(): number {
    return this.droppedCount;
  }

  /** Over the bound: per-dyno state is coalesced, latest wins: drop the oldest event that a
   * later one for the same dyno supersedes; failing that, the oldest event. A terminal event
   * (`down`: the dyno is gone) is never dropped, so the coordinator always learns of it; nor
   * is a host notice. A memory warning (advisory) goes after the superseded states and before
   * any latest one. */
  private shed(): void {
    const latest = new Map<string, number>();
    for (const e of this.pending) if (e.event.kind === 'dyno_state') latest.set(e.event.dyno.id, e.seq);
    const droppable = (e: Event) => e.event.kind === 'dyno_state' && e.event.dyno.state !== 'down';
    let idx = this.pending.findIndex((e) => droppable(e) && e.event.kind === 'dyno_state' && latest.get(e.event.dyno.id) !== e.seq);
    if (idx < 0) idx = this.pending.findIndex((e) => e.event.kind === 'memory_warning');
    if (idx < 0) idx = this.pending.findIndex(droppable);
    if (idx < 0) return; // only terminal events: over the bound rather than lose one
    this.pending.splice(idx, 1);
    this.droppedCount++;
  }
}
