// Durations of one kind of decision (placement), for GET /healthz: count, median, p99 and
// maximum over the last MAX_SAMPLES. Recording is O(1); a snapshot sorts at most 10,000 numbers.
export const MAX_SAMPLES = 10_000;

export interface LatencySnapshot {
  count: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export class LatencyRecorder {
  private readonly samples: number[] = [];
  private next = 0;
  private total = 0;

  record(ms: number): void {
    this.total++;
    if (this.samples.length < MAX_SAMPLES) this.samples.push(ms);
    else this.samples[this.next] = ms;
    this.next = (this.next + 1) % MAX_SAMPLES;
  }

  /** Times `fn` and records its duration. */
  time<T>(fn: () => T): T {
    const t0 = performance.now();
    try {
      return fn();
    } finally {
      this.record(performance.now() - t0);
    }
  }

  snapshot(): LatencySnapshot {
    const sorted = [...this.samples].sort((a, b) => a - b);
    const at = (q: number) => (sorted.length === 0 ? 0 : round(sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!));
    return { count: this.total, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: round(sorted[sorted.length - 1] ?? 0) };
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
