// Events waiting for the coordinator's cumulative ack. Every event gets the next per-agent
// sequence number and stays here until acknowledged; after a reconnect everything still
// pending is resent in order. With a journal (event-journal.ts) the pending events and the
// numbering also survive an agent restart.
import type { DynoStateName, DynoStatus, Event } from '../../shared/protocol.js';
import type { EventJournal, JournalState } from './event-journal.js';

/** At ~1 KB an event, 10,000 pending events bound the outbox near 10 MB during a long outage. */
export const MAX_PENDING_EVENTS = 10_000;

export class EventOutbox {
  private seq = 0;
  private pending: Event[] = [];
  private droppedCount = 0;

  constructor(private readonly max = MAX_PENDING_EVENTS, private readonly journal?: EventJournal, restored?: JournalState) {
    if (restored) {
      this.seq = restored.lastSeq;
      this.pending = [...restored.pending];
    }
  }

  push(from: DynoStateName | null, dyno: DynoStatus, at = new Date()): Event {
    const ev: Event = { type: 'event', seq: ++this.seq, at: at.toISOString(), event: { kind: 'dyno_state', from, dyno } };
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
    this.journal?.ack(seq, this.pending);
  }

  unacked(): readonly Event[] {
    return this.pending;
  }

  get lastSeq(): number {
    return this.seq;
  }

  get dropped(): number {
    return this.droppedCount;
  }

  /** Over the bound: per-dyno state is coalesced, latest wins: drop the oldest event that a
   * later one for the same dyno supersedes; failing that, the oldest event. A terminal event
   * (`down`: the dyno is gone) is never dropped, so the coordinator always learns of it. */
  private shed(): void {
    const latest = new Map<string, number>();
    for (const e of this.pending) latest.set(e.event.dyno.id, e.seq);
    const droppable = (e: Event) => e.event.dyno.state !== 'down';
    let idx = this.pending.findIndex((e) => droppable(e) && latest.get(e.event.dyno.id) !== e.seq);
    if (idx < 0) idx = this.pending.findIndex(droppable);
    if (idx < 0) return; // only terminal events: over the bound rather than lose one
    this.pending.splice(idx, 1);
    this.droppedCount++;
  }
}
