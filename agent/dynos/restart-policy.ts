// When a crashed dyno starts again: Heroku's crash restarts. A pure object: it keeps a count
// and the time of the last start, and answers with a delay; time and randomness are injected,
// so the schedule is tested without waiting (test/unit/agent/dynos/restart-policy.test.ts).
//
//   crash 1           restart at once (the first restart is immediate)
//   crash n (n >= 2)  baseMs * 2^(n-2), plus up to `jitter` of that at random, capped at capMs
//   a run that stayed up for stableAfterMs, or a new release, resets the count
//
// With the defaults (base 10 s, cap 20 min) a dyno that crashes right after every start is
// started again after 0 s, ~10 s, ~20 s, ~40 s, ..., and from the 9th crash on every ~20 min,
// which is where Heroku's cool-off ends up. The jitter spreads a fleet of dynos that all
// crash for one cause (a database outage) so that they do not come back in step.

export interface RestartPolicyOptions {
  /** Delay after the second crash in a row; doubles with every further crash. */
  baseMs: number;
  /** The longest delay. */
  capMs: number;
  /** A run at least this long counts as healthy: the next crash is a first crash again. */
  stableAfterMs: number;
  /** Fraction of the delay added at random (0.25: up to 25 % more). The cap still holds. */
  jitter: number;
  /** Monotonic ms (clock.ts): the stability check is an interval, and must not see NTP steps. */
  now?: () => number;
  random?: () => number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicyOptions = {
  baseMs: 10_000,
  capMs: 20 * 60_000,
  stableAfterMs: 10 * 60_000,
  jitter: 0.25,
};

/** How the last delay was chosen: the numbers a `restart_scheduled` decision carries. */
export interface RestartChoice {
  /** The crash number in a row (1: restarted at once). */
  attempt: number;
  delayMs: number;
  /** baseMs * 2^(attempt-2) before the jitter and the cap; 0 for the first crash. */
  backoffMs: number;
  /** The cap cut the delay. */
  capped: boolean;
  /** The run before this crash was healthy (stableAfterMs): the count started again. */
  reset: boolean;
}

export class RestartPolicy {
  private crashes = 0;
  private choice: RestartChoice | undefined;
  private startedAt: number | undefined;
  private release: string | undefined;
  private readonly now: () => number;
  private readonly random: () => number;

  constructor(private readonly opts: RestartPolicyOptions = DEFAULT_RESTART_POLICY) {
    if (!(opts.baseMs >= 0 && opts.capMs >= opts.baseMs && opts.stableAfterMs >= 0 && opts.jitter >= 0)) {
      throw new RangeError(`restart policy needs 0 <= baseMs <= capMs, stableAfterMs >= 0, jitter >= 0: ${JSON.stringify(opts)}`);
    }
    this.now = opts.now ?? (() => performance.now());
    this.random = opts.random ?? Math.random;
  }

  /** Crashes counted since the last reset. */
  get count(): number {
    return this.crashes;
  }

  /** The dyno (re)started running `release`. A different release than before resets the count. */
  started(release?: string): void {
    if (release !== this.release) this.crashes = 0;
    this.release = release;
    this.startedAt = this.now();
  }

  /** How the last crashed() chose its delay. */
  get last(): RestartChoice | undefined {
    return this.choice;
  }

  /** The dyno crashed: how long to wait before starting it again, in ms. */
  crashed(): number {
    const reset = this.startedAt !== undefined && this.now() - this.startedAt >= this.opts.stableAfterMs && this.crashes > 0;
    if (reset) this.crashes = 0;
    this.startedAt = undefined;
    this.crashes += 1;
    if (this.crashes === 1) {
      this.choice = { attempt: 1, delayMs: 0, backoffMs: 0, capped: false, reset };
      return 0;
    }
    const exp = Math.min(this.crashes - 2, 40); // 2^40 * any base is past any cap
    const backoffMs = this.opts.baseMs * 2 ** exp;
    const delay = Math.min(this.opts.capMs, backoffMs);
    const delayMs = Math.round(Math.min(this.opts.capMs, delay + delay * this.opts.jitter * this.random()));
    this.choice = { attempt: this.crashes, delayMs, backoffMs: Math.min(backoffMs, Number.MAX_SAFE_INTEGER), capped: delayMs >= this.opts.capMs, reset };
    return delayMs;
  }
}
