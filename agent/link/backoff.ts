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
  /** The coordinator's spread window for this outage (0: none). While set, a failed attempt
   * waits at least half of it again, at a random point: a fleet that came back too early
   * (the coordinator still down) retries spread over the window instead of in a cluster. */
  private windowMs = 0;

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
    const delay = Math.round(base / 2 + this.random() * (base / 2));
    if (this.windowMs <= 0) return delay;
    return Math.max(delay, Math.round(this.windowMs / 2 + this.random() * (this.windowMs / 2)));
  }

  /** Redial after exactly `ms` (a time the coordinator named, at least initialMs, at most
   * the cap); if that attempt fails too, back off from there, and while `windowMs` is set
   * wait at least a random point in its second half. Returns the delay. */
  startFrom(ms: number, windowMs = 0): number {
    this.windowMs = Math.min(this.maxMs, Math.max(0, windowMs));
    this.fromMs = Math.min(this.maxMs, Math.max(this.initialMs, Math.round(ms)));
    this.attempt = 1;
    return this.fromMs;
  }

  /** After a working link dropped: the first redial at a random time up to `spreadMs` (the
   * coordinator's hint for its fleet size), so a fleet's redials spread over that window. */
  spread(spreadMs: number): number {
    return this.startFrom(this.random() * spreadMs, spreadMs);
  }

  reset(): void {
    this.attempt = 0;
    this.windowMs = 0;
    this.fromMs = this.initialMs;
  }

  get attempts(): number {
    return this.attempt;
  }
}
