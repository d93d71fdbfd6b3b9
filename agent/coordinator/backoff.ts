// Reconnect backoff: exponential with jitter so that a fleet of agents does not stampede a
// coordinator that just restarted. Pure; time and randomness are injected for tests.
//
// Numbers (../DESIGN.md): start near 250 ms, multiply by 1.5, cap near 2 min, and reset
// only after a link stayed healthy for HEALTHY_AFTER_MS.
export const RECONNECT_INITIAL_MS = 250;
export const RECONNECT_MULTIPLIER = 1.5;
export const RECONNECT_MAX_MS = 120_000;
export const HEALTHY_AFTER_MS = 30_000;

export class Backoff {
  private attempt = 0;

  constructor(
    private readonly initialMs = RECONNECT_INITIAL_MS,
    private readonly maxMs = RECONNECT_MAX_MS,
    private readonly random: () => number = Math.random,
  ) {}

  /** The next delay: half fixed, half random ("equal jitter"), so delays never collapse to 0. */
  next(): number {
    const base = Math.min(this.maxMs, this.initialMs * RECONNECT_MULTIPLIER ** this.attempt);
    this.attempt++;
    return Math.round(base / 2 + this.random() * (base / 2));
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}
