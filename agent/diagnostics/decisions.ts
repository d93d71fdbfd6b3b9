// The agent's reasons (issue 14, item 3): a bounded ring of the decisions it took, each with an
// id, the dyno (or slug) it concerns, and the numbers it was taken on, so that the person on
// call can ask `slipway-agent why web.1` instead of reading the journal. One owner (this ring);
// the parts that decide call record() (the restarts hook, the kill paths, admission, slug
// eviction, re-adoption, convergence, the drain). Served at `GET /v1/events?dyno=` (server.ts).
//
// The ring is in memory only: it explains what this process did. After an agent restart the
// re-adoption outcomes are its first entries. Its size is fixed (DECISION_RING_SIZE), and an
// entry is small (a kind, a short message, a few numbers), so it cannot grow the agent.
import type { Clock } from '../lib/clock.js';

export type DecisionKind =
  | 'admission_refused' // a dyno not started: memory, disk or descriptors (the numbers)
  | 'restart_scheduled' // a crash restart: attempt, backoff chosen
  | 'restart_given_up' // crashed for good
  | 'kill' // the agent killed a dyno: R10, R12, R15 (cause and numbers)
  | 'slug_evicted' // a slug removed from the cache: why that one
  | 'readopted' // after an agent restart: a dyno's container taken over
  | 'readoption_failed' // ... or not, and what was done instead
  | 'convergence_stop' // stopped because the coordinator no longer wants it
  | 'drain' // the host is draining (EC2 notice, SIGTERM)
  | 'memory_warning'; // projected to reach R15 within the horizon

export interface Decision {
  /** `d-<n>`, counting up in this process: ids are stable for one agent run. */
  id: string;
  at: string;
  kind: DecisionKind;
  /** The dyno's id and name it concerns; absent for host-wide decisions (a slug, a drain). */
  dynoId?: string;
  dyno?: string;
  app?: string;
  /** One line a person reads: "restart 3 in 40 s (backoff 2^2 x 10 s, capped at 20 min)". */
  message: string;
  /** The numbers the decision was taken on (bytes, ms, counts, codes). */
  data?: Record<string, string | number | boolean | null>;
}

export type DecisionInput = Omit<Decision, 'id' | 'at'>;

/** What a decision about one dyno names of it (a DynoSpec or a DynoStatus has these). */
export interface DecisionSubject {
  id: string;
  name: string;
  app: string;
}

/** Where the deciding code records: the ring, or nothing (unit tests that leave it out). */
export type DecisionSink = Pick<DecisionLog, 'record' | 'about'>;

/** Decisions kept. At a few decisions a minute on a busy host, a day or more of them; a crash
 * loop of one dyno (one restart decision per backoff) cannot push out much, since its backoff
 * grows. Each entry is a few hundred bytes: at most ~1 MB. */
export const DECISION_RING_SIZE = 2_000;

export class DecisionLog {
  private readonly ring: (Decision | undefined)[];
  private next = 0;
  private count = 0;

  constructor(private readonly clock: Pick<Clock, 'now'>, private readonly size = DECISION_RING_SIZE) {
    this.ring = new Array<Decision | undefined>(size);
  }

  record(input: DecisionInput): Decision {
    this.count += 1;
    const d: Decision = { id: `d-${this.count}`, at: new Date(this.clock.now()).toISOString(), ...input };
    this.ring[this.next] = d;
    this.next = (this.next + 1) % this.size;
    return d;
  }

  /** A decision about one dyno: its id, name and app from `dyno`. */
  about(dyno: DecisionSubject, kind: DecisionKind, message: string, data?: Decision['data']): Decision {
    return this.record({ kind, dynoId: dyno.id, dyno: dyno.name, app: dyno.app, message, ...(data ? { data } : {}) });
  }

  /** Oldest first; `dyno` matches the dyno's id or its name (web.1). */
  list(filter: { dyno?: string; limit?: number } = {}): Decision[] {
    const out: Decision[] = [];
    for (let i = 0; i < this.size; i++) {
      const d = this.ring[(this.next + i) % this.size];
      if (!d) continue;
      if (filter.dyno !== undefined && d.dynoId !== filter.dyno && d.dyno !== filter.dyno) continue;
      out.push(d);
    }
    return filter.limit !== undefined ? out.slice(-filter.limit) : out;
  }

  /** Decisions ever recorded (for the metric and for "N older ones were dropped"). */
  get total(): number {
    return this.count;
  }
}
