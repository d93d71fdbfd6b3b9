// Time, injected wherever a component waits: the dyno owner and its hooks (restart delays,
// daily cycling, the boot deadline R10, the readiness probe's pauses, the R14 rate limit:
// DynoDeps.clock) and the link's journal writer (its retry backoff). Real by default; unit
// tests step a fake one instead of sleeping (test/helpers/stepped-clock.ts for the dyno's
// async hooks, test/helpers/fake-clock.ts for synchronous steps).
//
// Two readings, because the wall clock jumps: chrony's `makestep` steps it at boot, just when
// the host's dynos start, by as much as the RTC was off (hours on a fresh instance). A deadline
// or interval taken from wall time would then stretch by the step or end at once (R10 killing
// a dyno that just launched, a crash loop counted as a healthy run). So every deadline,
// interval, elapsed time and rate is measured on monotonic(); now() is only for timestamps shown
// to people or sent on the wire (a dyno's `since`, sampledAt, connectedSince, failingSince).
// setTimeout is monotonic already: Node's timers run on libuv's loop time, read from
// CLOCK_MONOTONIC(_COARSE) on Linux, so a timer set for 60 s fires 60 s later whatever the wall
// clock does; only readings taken to compare later need monotonic().

export interface Clock {
  /** Wall time, ms since the epoch: for timestamps only, never for a duration. */
  now(): number;
  /** Monotonic ms from an arbitrary origin (performance.now()): never steps, only for
   * differences between two readings (deadlines, intervals, elapsed times, rates). */
  monotonic(): number;
  /** Real timers are unref'd: a pending restart or cycle never keeps the agent alive. */
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(timer: unknown): void;
}

export const realClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
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
