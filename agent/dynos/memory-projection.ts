// A warning before a dyno's memory runs out, as a pure judge of its samples (time injected,
// as in memory-policy.ts). The manager's memory round gives each dyno's working set + swap
// (what R14/R15 count) every memory.sampleMs; from the last few the projector fits a trend and
// projects when it reaches the dyno's R15 line (r15Multiple x quota, which is also the
// kernel's hard limit: reaching it is R15 or the OOM kill, whichever comes first).
//
// When is a trend a trend (all of these, over the last `windowSamples` samples):
//   - at least `minSamples` of them: a dyno that just booted or just freed memory has no trend;
//   - a positive least-squares slope whose t-statistic (slope / its standard error) is at least
//     MIN_T_STAT: noise around a steady level gives slopes that are small against their error;
//   - both the floor and the peak rose: the lowest and the highest sample of the newer half of
//     the window are above those of the older half. A garbage-collected heap is a sawtooth; a
//     window of a non-integer number of its cycles can have a positive fitted slope, but the
//     floor after each collection and the peak before it stay where they were. A leak, or a
//     sawtooth that rises, lifts both. (A GC cycle longer than the window looks like a leak
//     until its collection; the collection ends the episode. At 5 s samples the default window
//     is 5 min, the least 2 min.)
//   - the newer half still rises (its own slope is at least a quarter of the whole window's): a
//     leak that stopped is not projected onward.
// The projection starts from the fitted line at the last sample (not the last sample itself,
// which carries the noise), lifted by the window's largest excess over the line: the kernel
// kills at a peak, not at the mean, so a rising sawtooth is projected from its peaks (for a
// clean leak the lift is 0). It runs at the fitted slope to the limit.
//
// Memory pressure (cgroup v2 PSI, `memory.pressure`, `some avg10`: percent of the last 10 s in
// which some task of the dyno waited for memory) raises urgency, never creates it: a dyno that
// reclaims its own page cache under a flat working set stalls too, but is not heading for R15.
// With a trend, pressure means the kernel is already reclaiming hard to keep the dyno below its
// limit, and the working set understates what the dyno asks for: the horizon is stretched by
// (1 + min(some10, 50) / 50), up to twice the configured one at 50 % stalled. The projected
// time reported is the trend's own. Without PSI (cgroup v1, as on this machine's kind) the
// trend alone decides.
//
// Episodes: one warning when the projection first falls within the horizon; none again until
// the projection was outside it (or absent) for REARM_SAMPLES samples in a row (the trend went
// away) and came back, and never two within `minIntervalMs` (default: the horizon; a warning
// says "within the horizon", repeating it sooner says nothing new). A new container starts from
// nothing (reset()).

export interface MemoryProjectionOptions {
  /** The R15 line (= the kernel's hard limit), bytes. */
  limitBytes: number;
  /** Warn when the projection falls within this; 0 turns warnings off. */
  horizonMs: number;
  /** Least time between two warnings of one dyno; default horizonMs. */
  minIntervalMs?: number;
  /** Samples the trend is fitted over (default WINDOW_SAMPLES). */
  windowSamples?: number;
  /** Fewest samples a trend needs (default MIN_SAMPLES). */
  minSamples?: number;
}

export interface ProjectionSample {
  /** Monotonic ms (clock.ts): the slope is per interval, and must not see NTP steps. */
  at: number;
  /** Working set + swap. */
  totalBytes: number;
  /** PSI `some avg10`, percent; undefined where the cgroup has none (v1). */
  pressureSome10?: number | undefined;
}

export interface Projection {
  /** Until the fitted trend reaches the limit; 0 if it is there. */
  projectedMs: number;
  slopeBytesPerSec: number;
  /** The fitted trend at the last sample. */
  fittedBytes: number;
  /** What the projection starts from: fittedBytes lifted by the window's peaks. */
  peakBytes: number;
  /** The horizon this projection was judged against (stretched by pressure). */
  horizonMs: number;
}

export type ProjectionVerdict = { action: 'warn' | 'none'; projection: Projection | undefined };

/** 60 x the default 5 s sample: a 5 min window, half the default horizon and long enough for
 * many GC cycles. A slow leak needs it: over 2 min, +0.1 MB/s (60 MB in 10 min) is lost in
 * +-20 MB of noise; over 5 min its t-statistic is about 6. */
export const WINDOW_SAMPLES = 60;
/** 2 min at 5 s: the fewest a trend is fitted from (a fresh container waits that long). */
export const MIN_SAMPLES = 24;
/** t >= 6: a steady level with independent noise gives a slope this far from zero in about
 * one window in 100,000 (Student's t, 22+ degrees of freedom); the floor-and-peak rule and the
 * horizon screen further. */
export const MIN_T_STAT = 6;
/** Samples in a row without a projection within the horizon that end an episode (15 s at 5 s):
 * one noisy sample must not re-arm the warning. */
export const REARM_SAMPLES = 3;
/** PSI some avg10 at which the horizon is doubled (percent); linear below, capped above. */
export const PRESSURE_FULL = 50;

export const DEFAULT_WARN_HORIZON_MS = 10 * 60_000;

interface Fit { slope: number; fittedLast: number; tStat: number; maxExcess: number }

/** Least squares over (at, totalBytes): slope in bytes per ms, the fitted value at the last
 * sample, the slope's t-statistic (Infinity for a perfect rising line) and the largest excess
 * of a sample over the line. undefined under 3 samples or with no time between them. */
export function fitTrend(samples: readonly ProjectionSample[]): Fit | undefined {
  const n = samples.length;
  if (n < 3) return undefined;
  // Times relative to the first sample: monotonic ms are large, and their squares lose precision.
  const t0 = samples[0]!.at;
  let sx = 0;
  let sy = 0;
  for (const s of samples) {
    sx += s.at - t0;
    sy += s.totalBytes;
  }
  const mx = sx / n;
  const my = sy / n;
  let sxx = 0;
  let sxy = 0;
  for (const s of samples) {
    const dx = s.at - t0 - mx;
    sxx += dx * dx;
    sxy += dx * (s.totalBytes - my);
  }
  if (!(sxx > 0)) return undefined;
  const slope = sxy / sxx;
  const intercept = my - slope * mx;
  let sse = 0;
  let maxExcess = 0;
  for (const s of samples) {
    const r = s.totalBytes - (intercept + slope * (s.at - t0));
    sse += r * r;
    if (r > maxExcess) maxExcess = r;
  }
  const se = Math.sqrt(sse / (n - 2) / sxx);
  const tStat = se > 0 ? slope / se : slope > 0 ? Infinity : slope < 0 ? -Infinity : 0;
  return { slope, fittedLast: intercept + slope * (samples[n - 1]!.at - t0), tStat, maxExcess };
}

/** The horizon stretched by memory pressure (see the top of this file). */
export function pressuredHorizonMs(horizonMs: number, pressureSome10: number | undefined): number {
  const p = pressureSome10 !== undefined && pressureSome10 > 0 ? Math.min(pressureSome10, PRESSURE_FULL) : 0;
  return horizonMs * (1 + p / PRESSURE_FULL);
}

/** The projection of a steady rising trend to `limitBytes`, or undefined when the samples show
 * none (the rules at the top of this file). Pure: the window is the caller's. */
export function projectToLimit(window: readonly ProjectionSample[], limitBytes: number, minSamples = MIN_SAMPLES): Omit<Projection, 'horizonMs'> | undefined {
  if (window.length < Math.max(minSamples, 4)) return undefined;
  const fit = fitTrend(window);
  if (!fit || !(fit.slope > 0) || fit.tStat < MIN_T_STAT) return undefined;
  const half = Math.floor(window.length / 2);
  const older = window.slice(0, half);
  const newer = window.slice(window.length - half);
  const lo = (xs: readonly ProjectionSample[]) => Math.min(...xs.map((s) => s.totalBytes));
  const hi = (xs: readonly ProjectionSample[]) => Math.max(...xs.map((s) => s.totalBytes));
  if (!(lo(newer) > lo(older) && hi(newer) > hi(older))) return undefined;
  const recent = fitTrend(newer);
  if (!recent || recent.slope < fit.slope / 4) return undefined;
  const peak = fit.fittedLast + fit.maxExcess;
  const projectedMs = peak >= limitBytes ? 0 : Math.round((limitBytes - peak) / fit.slope);
  return { projectedMs, slopeBytesPerSec: fit.slope * 1000, fittedBytes: fit.fittedLast, peakBytes: peak };
}

/** One dyno's projector: keeps its window and its episode. Owned by its memory watch. */
export class MemoryProjector {
  private window: ProjectionSample[] = [];
  private armed = true;
  private outside = 0;
  private lastWarnAt: number | undefined;
  private readonly windowSamples: number;
  private readonly minSamples: number;
  private readonly minIntervalMs: number;

  constructor(private readonly opts: MemoryProjectionOptions) {
    this.windowSamples = opts.windowSamples ?? WINDOW_SAMPLES;
    this.minSamples = opts.minSamples ?? MIN_SAMPLES;
    this.minIntervalMs = opts.minIntervalMs ?? opts.horizonMs;
    if (!(opts.limitBytes > 0 && opts.horizonMs >= 0 && this.minSamples >= 4 && this.windowSamples >= this.minSamples && this.minIntervalMs >= 0)) {
      throw new RangeError(`memory projection needs limitBytes > 0, horizonMs >= 0, 4 <= minSamples <= windowSamples: ${JSON.stringify(opts)}`);
    }
  }

  /** Adds one sample; 'warn' at most once per episode. */
  add(sample: ProjectionSample): ProjectionVerdict {
    this.window.push(sample);
    if (this.window.length > this.windowSamples) this.window.shift();
    if (this.opts.horizonMs === 0) return { action: 'none', projection: undefined };
    const found = projectToLimit(this.window, this.opts.limitBytes, this.minSamples);
    const horizonMs = pressuredHorizonMs(this.opts.horizonMs, sample.pressureSome10);
    const projection = found && { ...found, horizonMs };
    if (!projection || projection.projectedMs > horizonMs) {
      if (++this.outside >= REARM_SAMPLES) this.armed = true;
      return { action: 'none', projection };
    }
    this.outside = 0;
    const rested = this.lastWarnAt === undefined || sample.at - this.lastWarnAt >= this.minIntervalMs;
    if (!this.armed || !rested) return { action: 'none', projection };
    this.armed = false;
    this.lastWarnAt = sample.at;
    return { action: 'warn', projection };
  }

  /** A new container (a crash restart, a cycle): its memory has no history, and its first
   * episode is a new one. */
  reset(): void {
    this.window = [];
    this.armed = true;
    this.outside = 0;
    this.lastWarnAt = undefined;
  }
}

/** PSI `some avg10` from a `memory.pressure` file (`some avg10=1.23 avg60=… total=…`), or
 * undefined when the text has none. */
export function parsePressureSome10(text: string | undefined): number | undefined {
  const m = /^some\b.*?\bavg10=([0-9.]+)/m.exec(text ?? '');
  if (!m) return undefined;
  const v = Number(m[1]);
  return Number.isFinite(v) ? v : undefined;
}
