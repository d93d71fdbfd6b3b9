// Who waits for route changes to reach HAProxy. Every route table change takes the next
// sequence number; a pass of the router that applied everything up to `seq` says so with
// applied(seq). A waiter is released once its number is applied, or rejected with
// ROUTER_UNAVAILABLE (carrying the last failure) when its bound runs out first.
import { SlipwayError } from '../../shared/errors.js';

interface Waiter {
  target: number;
  resolve: () => void;
  reject: (err: SlipwayError) => void;
  timer: unknown;
}

/** The timers the bound runs on (a FakeClock in tests). */
export interface SettleTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
}

const REAL_TIMERS: SettleTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id as NodeJS.Timeout),
};

export class SettleWaiters {
  seq = 0;
  appliedSeq = 0;
  private lastError: SlipwayError | undefined;
  private readonly waiters = new Set<Waiter>();

  constructor(private readonly timers: SettleTimers = REAL_TIMERS) {}

  changed(): void {
    this.seq++;
  }

  applied(target: number): void {
    if (target > this.appliedSeq) this.appliedSeq = target;
    this.lastError = undefined;
    for (const w of [...this.waiters]) {
      if (w.target > this.appliedSeq) continue;
      this.timers.clearTimeout(w.timer);
      this.waiters.delete(w);
      w.resolve();
    }
  }

  failed(err: SlipwayError): void {
    this.lastError = err;
  }

  /** Resolves once every change so far is applied; rejects after timeoutMs. */
  wait(timeoutMs: number): Promise<void> {
    const target = this.seq;
    if (this.appliedSeq >= target) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        target, resolve, reject,
        timer: this.timers.setTimeout(() => {
          this.waiters.delete(waiter);
          const why = this.lastError ? `: ${this.lastError.message}` : '';
          reject(new SlipwayError('ROUTER_UNAVAILABLE', `route changes were not applied in HAProxy within ${timeoutMs} ms${why}`, { cause: this.lastError }));
        }, timeoutMs),
      };
      this.waiters.add(waiter);
    });
  }

  rejectAll(err: SlipwayError): void {
    for (const w of this.waiters) {
      this.timers.clearTimeout(w.timer);
      w.reject(err);
    }
    this.waiters.clear();
  }
}
