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
  /** The delay the current run of attempts backs off from: initialMs, or the time a
   * coordinator named (startFrom). */
  private fromMs: number;

  constructor(
    private readonly initialMs = RECONNECT_INITIAL_MS,
    private readonly maxMs = RECONNECT_MAX_MS,
    private readonly random: () => number = Math.random,
  ) {
    this.fromMs = initialMs;
  }

  /** The next delay: half fixed, half random ("equal jitter"), so delays never collapse to 0. */
  next(): number {
    const base = Math.min(this.maxMs, this.fromMs * RECONNECT_MULTIPLIER ** this.attempt);
    this.attempt++;
    return Math.round(base / 2 + this.random() * (base / 2));
  }

  /** Redial after exactly `ms` (a time the coordinator named, at least initialMs, at most
   * the cap); if that attempt fails too, back off from there. Returns the delay. */
  startFrom(ms: number): number {
    this.fromMs = Math.min(this.maxMs, Math.max(this.initialMs, Math.round(ms)));
    this.attempt = 1;
    return this.fromMs;
  }

  /** After a working link dropped: the first redial at a random time up to `spreadMs` (the
   * coordinator's hint for its fleet size), so a fleet's redials spread over that window. */
  spread(spreadMs: number): number {
    return this.startFrom(this.random() * spreadMs);
  }

  reset(): void {
    this.attempt = 0;
    this.fromMs = this.initialMs;
  }

  get attempts(): number {
    return this.attempt;
  }
}
