// A clock for timeout and retry paths on fake time (journal-writer.ts's JournalClock, and any
// component that takes a Clock, agent/lib/clock.ts): nothing runs until the test advances it.
// Its wall time (now) and monotonic time move together under tick; stepWall moves the wall
// time alone, as an NTP step does.
export class FakeClock {
  private t = 0;
  private nextId = 1;
  private timers = new Map<number, { at: number; fn: () => void }>();
  /** Every delay asked for, in order (to check that each wait is bounded). */
  readonly delays: number[] = [];

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
    const id = this.nextId++;
    this.delays.push(ms);
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return id;
  };

  clearTimeout = (id: unknown): void => {
    this.timers.delete(id as number);
  };

  /** Advances by `ms`, running every timer that falls due, in time order (also those set
   * while advancing). */
  tick(ms = 0): void {
    const end = this.t + ms;
    for (;;) {
      let due: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.timers) if (entry[1].at <= end && (!due || entry[1].at < due[1].at)) due = entry;
      if (!due) break;
      this.timers.delete(due[0]);
      this.t = Math.max(this.t, due[1].at);
      due[1].fn();
    }
    this.t = end;
  }

  /** Timers waiting to run. */
  get pending(): number {
    return this.timers.size;
  }
}
