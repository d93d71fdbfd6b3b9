// Events waiting for the coordinator's cumulative ack. Every event gets the next per-agent
// sequence number and stays here until acknowledged; after a reconnect everything still
// pending is resent in order. Kept in memory for now (the on-disk journal that survives an
// agent restart comes with the coordinator-link issue).
import type { DynoStateName, DynoStatus, Event } from '../../shared/protocol.js';

/** At ~1 KB an event, 10,000 pending events bound the outbox near 10 MB during a long outage. */
export const MAX_PENDING_EVENTS = 10_000;

export class EventOutbox {
  private seq = 0;
  private pending: Event[] = [];
  private droppedCount = 0;

  constructor(private readonly max = MAX_PENDING_EVENTS) {}

  push(from: DynoStateName | null, dyno: DynoStatus, at = new Date()): Event {
    const ev: Event = { type: 'event', seq: ++this.seq, at: at.toISOString(), event: { kind: 'dyno_state', from, dyno } };
    this.pending.push(ev);
    if (this.pending.length > this.max) this.shed();
    return ev;
  }

  /** Cumulative: drops every event with seq <= `seq`. */
  ack(seq: number): void {
    if (this.pending.length === 0 || seq < this.pending[0]!.seq) return;
    this.pending = this.pending.filter((e) => e.seq > seq);
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

  /** Over the bound: drop the oldest event superseded by a later one for the same dyno
   * (the coordinator reconciles from the hello anyway); failing that, the oldest event. */
  private shed(): void {
    const latest = new Map<string, number>();
    for (const e of this.pending) latest.set(e.event.dyno.id, e.seq);
    const idx = this.pending.findIndex((e) => latest.get(e.event.dyno.id) !== e.seq);
    this.pending.splice(idx >= 0 ? idx : 0, 1);
    this.droppedCount++;
  }
}
