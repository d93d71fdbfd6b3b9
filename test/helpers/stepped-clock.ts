// Fake time for the dyno owner's tests (agent/lib/clock.ts): nothing that waits on it runs
// until the test steps it. Each of a dyno's timers starts async work when it fires (a restart
// launches a container, a cycle stops one), and that work sets the next timer some real
// microseconds later; so a test waits, in bounded real time, for the timer it expects to be set
// (`next`, `runNext`), then steps the clock to it. test/helpers/fake-clock.ts's FakeClock is
// the same shape, for code whose timers are set synchronously. Both keep wall time (now) and
// monotonic time; stepWall moves the wall time alone, as an NTP step does.
export class SteppedClock {
  private t = 0;
  private ids = 0;
  private readonly timers = new Map<number, { at: number; ms: number; fn: () => void }>();

  /** Wall minus monotonic: moved only by stepWall. */
  private wallOffset = 0;

  /** Wall time: the monotonic time plus every wall step so far. */
  now = (): number => this.t + this.wallOffset;

  /** Monotonic time: moved only by tick (and what runs timers); the timers run on it. */
  monotonic = (): number => this.t;

  /** Steps the wall clock by `ms` (±): an NTP step (chrony's `makestep`). The monotonic time
   * and every timer stay where they are. */
  stepWall(ms: number): void {
    this.wallOffset += ms;
  }

  setTimeout = (fn: () => void, ms: number): unknown => {
    const id = ++this.ids;
    this.timers.set(id, { at: this.t + Math.max(0, ms), ms, fn });
    return id;
  };

  clearTimeout = (id: unknown): void => {
    this.timers.delete(id as number);
  };

  /** The delays of the timers waiting to run, soonest first. */
  get pending(): number[] {
    return [...this.timers.values()].sort((a, b) => a.at - b.at).map((x) => x.ms);
  }

  /** Moves time on by `ms`, running every timer due by then in time order (also those that
   * the timers run set, if they are due too). */
  tick(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const due = this.soonest();
      if (!due || due[1].at > end) break;
      this.timers.delete(due[0]);
      this.t = due[1].at;
      due[1].fn();
    }
    this.t = end;
  }

  /** Waits (real time, at most `withinMs`) until a timer is pending for which `match` holds
   * (by default any), and returns its delay. */
  async next(match: (ms: number) => boolean = () => true, withinMs = 5_000): Promise<number> {
    const end = Date.now() + withinMs;
    for (;;) {
      const hit = [...this.timers.values()].sort((a, b) => a.at - b.at).find((x) => match(x.ms));
      if (hit) return hit.ms;
      if (Date.now() > end) throw new Error(`no timer set within ${withinMs} ms (pending: ${this.pending.join(', ') || 'none'})`);
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  /** Waits for the next timer (as next()), moves time on to it and runs it; returns its delay. */
  async runNext(match?: (ms: number) => boolean): Promise<number> {
    const ms = await this.next(match);
    const entry = [...this.timers.entries()].sort((a, b) => a[1].at - b[1].at).find(([, x]) => x.ms === ms)!;
    this.tick(entry[1].at - this.t);
    return ms;
  }

  private soonest(): [number, { at: number; ms: number; fn: () => void }] | undefined {
    let best: [number, { at: number; ms: number; fn: () => void }] | undefined;
    for (const e of this.timers) if (!best || e[1].at < best[1].at) best = e;
    return best;
  }
}
