// Time, injected wherever a component waits: the dyno owner and its hooks (restart delays,
// daily cycling, the boot deadline R10, the readiness probe's pauses, the R14 rate limit:
// DynoDeps.clock) and the link's journal writer (its retry backoff). Real by default; unit
// tests step a fake one instead of sleeping (test/helpers/stepped-clock.ts for the dyno's
// async hooks, test/helpers/fake-clock.ts for synchronous steps).

export interface Clock {
  now(): number;
  /** Real timers are unref'd: a pending restart or cycle never keeps the agent alive. */
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(timer: unknown): void;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout),
};

/** Waits `ms` on `clock`; an abort of `signal` ends the wait early (it resolves either way). */
export function pause(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const onAbort = () => {
      clock.clearTimeout(timer);
      resolve();
    };
    const timer = clock.setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
