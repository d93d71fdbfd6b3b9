// Write-behind of the leader's state changes into its store, with group commit: the tables
// put() a change as it happens (synchronously, inside the state change), the writer keeps the
// latest change per key and writes them in one fenced transaction a few milliseconds later.
// Whoever must not answer before its change is durable (an event's ack, a formation's 200)
// awaits flushed(). One writer per leadership term: it writes under the epoch it was made
// with, and a STORE_FENCED answer ends the term (onFenced) and fails every waiter.
//
// Coalescing by key bounds the queue by the number of things the coordinator knows (dynos,
// agents, formations), not by the rate of changes: 2,000 agents reporting capacity every few
// seconds put the same 2,000 keys again and again. A store that is unreachable is retried with
// backoff (the batch is merged back under anything newer); waiters wait (an ack not sent is an
// event the agent keeps), up to waitTimeoutMs: then they fail with STORE_UNAVAILABLE while the
// changes stay queued.
import type { Logger } from '../../shared/log.js';
import { asSlipwayError, SlipwayError } from '../../shared/errors.js';
import type { CoordinatorStore, StoreWrite } from './store.js';

export interface StoreWriterOptions {
  store: CoordinatorStore;
  epoch: number;
  log: Logger;
  /** The store answered STORE_FENCED: another coordinator leads now. Called once. */
  onFenced: (err: SlipwayError) => void;
  /** How long a change waits for others to share its transaction (group commit). */
  batchDelayMs?: number;
  /** Retry backoff while the store is unreachable: from min, doubling, to max. */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** The bound of flushed() (default 10 s). */
  waitTimeoutMs?: number;
}

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

/** The key a change coalesces under: a later change of the same thing replaces it. */
export function writeKey(w: StoreWrite): string {
  switch (w.kind) {
    case 'formation': return `formation:${w.formation.app}/${w.formation.type}`;
    case 'formation_deleted': return `formation:${w.app}/${w.type}`;
    case 'dyno': return `dyno:${w.dyno.id}`;
    case 'dyno_deleted': return `dyno:${w.id}`;
    case 'agent': return `agent:${w.agent.identity.id}`;
    case 'ledger': return `ledger:${w.entry.agentId}`;
    case 'route': return `route:${w.route.app}/${w.route.dynoId}`;
    case 'route_deleted': return `route:${w.app}/${w.dynoId}`;
    case 'drain': return `drain:${w.drain.app}/${w.drain.id}`;
    case 'drain_deleted': return `drain:${w.app}/${w.id}`;
  }
}

export class StoreWriter {
  private pending = new Map<string, StoreWrite>();
  /** Waiters of changes not yet taken into a batch. */
  private waiters: Waiter[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private stopped: SlipwayError | undefined;
  private readonly batchDelayMs: number;
  private readonly retryMinMs: number;
  private readonly retryMaxMs: number;
  /** Counters for /healthz. */
  readonly stats = { batches: 0, writes: 0, retries: 0, lastBatchMs: 0 };

  constructor(private readonly o: StoreWriterOptions) {
    this.batchDelayMs = o.batchDelayMs ?? 5;
    this.retryMinMs = o.retryMinMs ?? 100;
    this.retryMaxMs = o.retryMaxMs ?? 5_000;
  }

  get epoch(): number {
    return this.o.epoch;
  }

  /** Queues a change (never throws; after the term ended it is dropped). */
  put(write: StoreWrite): void {
    if (this.stopped) return;
    const key = writeKey(write);
    // Delete first so the key moves to the end: the batch keeps the order of last changes.
    this.pending.delete(key);
    this.pending.set(key, write);
    this.schedule();
  }

  /** Resolves once every change put before this call is in the store; rejects when the term
   * ended first (STORE_FENCED, or the writer was closed). */
  flushed(): Promise<void> {
    if (this.stopped) return Promise.reject(this.stopped);
    if (this.pending.size === 0 && !this.running) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const at = this.waiters.indexOf(waiter);
        if (at >= 0) this.waiters.splice(at, 1);
        reject(new SlipwayError('STORE_UNAVAILABLE', `the store did not take the changes within ${this.o.waitTimeoutMs ?? 10_000} ms (they stay queued)`));
      }, this.o.waitTimeoutMs ?? 10_000);
      const waiter: Waiter = {
        resolve: () => { clearTimeout(timer); resolve(); },
        reject: (err) => { clearTimeout(timer); reject(err); },
      };
      this.waiters.push(waiter);
      this.schedule();
    });
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /** Writes what is queued (bounded by the caller), then stops taking changes. */
  async close(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.flushed();
    } catch {
      // Fenced or unreachable: nothing more to write under this epoch.
    }
    this.stop(new SlipwayError('COORDINATOR_NOT_LEADER', 'this coordinator ended its leadership term'));
  }

  private schedule(): void {
    if (this.running || this.timer || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.run();
    }, this.batchDelayMs);
  }

  private async run(): Promise<void> {
    this.running = true;
    let backoff = this.retryMinMs;
    try {
      while (!this.stopped && (this.pending.size > 0 || this.waiters.length > 0)) {
        const batch = this.pending;
        const waiters = this.waiters;
        this.pending = new Map();
        this.waiters = [];
        if (batch.size === 0) {
          for (const w of waiters) w.resolve();
          continue;
        }
        const started = Date.now();
        try {
          await this.o.store.write(this.o.epoch, [...batch.values()]);
          this.stats.batches++;
          this.stats.writes += batch.size;
          this.stats.lastBatchMs = Date.now() - started;
          backoff = this.retryMinMs;
          for (const w of waiters) w.resolve();
        } catch (err) {
          const e = asSlipwayError(err);
          if (e.code === 'STORE_FENCED') {
            for (const w of waiters) w.reject(e);
            this.stop(e);
            this.o.onFenced(e);
            return;
          }
          // Unreachable (or a failed statement): merge the batch back under newer changes and
          // retry; its waiters wait for the retry.
          this.stats.retries++;
          this.o.log.warn({ err: e, writes: batch.size, retryInMs: backoff }, 'store write failed; retrying');
          const merged = new Map(batch);
          for (const [key, w] of this.pending) {
            merged.delete(key);
            merged.set(key, w);
          }
          this.pending = merged;
          this.waiters = [...waiters, ...this.waiters];
          await new Promise((r) => setTimeout(r, backoff));
          backoff = Math.min(this.retryMaxMs, backoff * 2);
        }
      }
    } finally {
      this.running = false;
      if (!this.stopped && this.pending.size > 0) this.schedule();
    }
  }

  private stop(err: SlipwayError): void {
    this.stopped = err;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const w of this.waiters) w.reject(err);
    this.waiters = [];
    this.pending.clear();
  }
}
