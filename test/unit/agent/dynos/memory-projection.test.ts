// The warning before R15 as numbers (memory-projection.ts): a 512 MB dyno (its R15 line and
// kernel limit 1 GiB) sampled every 5 s, the default 10 min horizon, on made-up time. Noise
// comes from a seeded generator, so every run sees the same samples.
import t from 'tap';
import {
  DEFAULT_WARN_HORIZON_MS, MemoryProjector, MIN_SAMPLES, REARM_SAMPLES, fitTrend, parsePressureSome10, pressuredHorizonMs,
  projectToLimit, type ProjectionSample,
} from '../../../../agent/dynos/memory-projection.js';

const MB = 1024 * 1024;
const LIMIT = 1024 * MB;
const STEP_MS = 5_000;
const HORIZON = DEFAULT_WARN_HORIZON_MS;

/** Uniform noise in [-1, 1) from a seeded LCG (Numerical Recipes' constants). */
function noise(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return (x / 2 ** 32) * 2 - 1;
  };
}

/** Feeds `bytesAt(i)` for samples 0..n-1; the indices (and verdicts) of the warnings. */
function run(p: MemoryProjector, n: number, bytesAt: (i: number) => number, pressureAt?: (i: number) => number | undefined) {
  const warnings: { i: number; projectedMs: number; slopeBytesPerSec: number; horizonMs: number }[] = [];
  for (let i = 0; i < n; i++) {
    const v = p.add({ at: 1_000_000 + i * STEP_MS, totalBytes: bytesAt(i), pressureSome10: pressureAt?.(i) });
    if (v.action === 'warn') warnings.push({ i, ...v.projection! });
  }
  return warnings;
}

const projector = (over: Partial<ConstructorParameters<typeof MemoryProjector>[0]> = {}) => new MemoryProjector({ limitBytes: LIMIT, horizonMs: HORIZON, ...over });

t.test('a linear leak is projected to the R15 line exactly, and warned once, when it comes within 10 min', async (t) => {
  // 300 MB, +0.5 MB/s: the line is at 1024 MB after 1448 s (sample 289.6); 10 min before that
  // is 848 s, sample 169.6: the first sample within the horizon is #170.
  const leak = (i: number) => 300 * MB + 0.5 * MB * (i * STEP_MS / 1000);
  const w = run(projector(), 280, leak);
  t.equal(w.length, 1, 'one warning for one episode');
  t.equal(w[0]!.i, 170, 'at the first sample within 10 min');
  const expected = (LIMIT - leak(170)) / (0.5 * MB) * 1000;
  t.ok(Math.abs(w[0]!.projectedMs - expected) <= 1, `projected ${w[0]!.projectedMs} ms, truth ${expected} ms`);
  t.ok(Math.abs(w[0]!.slopeBytesPerSec - 0.5 * MB) < 1, 'slope 0.5 MB/s');
});

t.test('a noisy leak (+-20 MB around +0.5 MB/s) warns once, about the horizon ahead', async (t) => {
  const r = noise(7);
  const leak = (i: number) => 300 * MB + 0.5 * MB * (i * STEP_MS / 1000) + 20 * MB * r();
  const w = run(projector(), 285, leak);
  t.equal(w.length, 1, 'one warning');
  // What is left at the warning of the leak itself (without the noise): about the horizon.
  const truthMs = (LIMIT - (300 * MB + 0.5 * MB * (w[0]!.i * STEP_MS / 1000))) / (0.5 * MB) * 1000;
  t.ok(truthMs >= HORIZON - 60_000 && truthMs <= HORIZON + 120_000, `warned ${Math.round(truthMs / 1000)} s before the leak reaches the line`);
  t.ok(Math.abs(w[0]!.projectedMs - truthMs) <= 90_000, `projected ${Math.round(w[0]!.projectedMs / 1000)} s`);
  t.ok(Math.abs(w[0]!.slopeBytesPerSec / MB - 0.5) < 0.1, `slope ${(w[0]!.slopeBytesPerSec / MB).toFixed(3)} MB/s`);
});

t.test('a steady dyno with noise never warns, even close to its limit, over 14 h of samples', async (t) => {
  for (const [level, amp, seed] of [[400, 20, 1], [950, 20, 2], [980, 5, 3], [700, 60, 4]] as const) {
    const r = noise(seed);
    const w = run(projector(), 10_000, () => level * MB + amp * MB * r());
    t.same(w, [], `${level} MB +-${amp} MB: no warning`);
  }
});

t.test('a perfectly flat dyno has no trend', async (t) => {
  const flat = Array.from({ length: 60 }, (_, i): ProjectionSample => ({ at: i * STEP_MS, totalBytes: 900 * MB }));
  t.equal(projectToLimit(flat, LIMIT), undefined);
  t.equal(fitTrend(flat)!.slope, 0);
});

/** A garbage-collected heap: climbs `amp` MB over `period` samples from `floor`, then drops. */
const saw = (floor: number, amp: number, period: number) => (i: number) => (floor + amp * ((i % period) / period)) * MB;

t.test('a sawtooth (GC) near its limit does not warn, whatever its period against the window', async (t) => {
  for (const period of [4, 6, 7.3, 11, 17.5, 23]) {
    const w = run(projector(), 5_000, saw(600, 300, period));
    t.same(w, [], `GC every ${period * 5} s between 600 and 900 MB of a 1024 MB limit: no warning`);
  }
});

t.test('a sawtooth whose trend rises warns once, projected from its peaks', async (t) => {
  // GC every 36.5 s between a floor and 100 MB above it; floor and peaks rise 0.5 MB/s. The
  // peaks reach 1024 MB at 1248 s (the mean 100 s later): the warning is 10 min before the peaks.
  const rising = (i: number) => saw(300, 100, 7.3)(i) + 0.5 * MB * (i * STEP_MS / 1000);
  const w = run(projector(), 240, rising);
  t.equal(w.length, 1, 'one warning');
  const peaksReachAtS = (1024 - 400) / 0.5;
  const warnedAtS = w[0]!.i * STEP_MS / 1000;
  const leftS = peaksReachAtS - warnedAtS;
  t.ok(w[0]!.projectedMs / 1000 <= leftS + 15, `warned at ${warnedAtS} s for ${Math.round(w[0]!.projectedMs / 1000)} s later; the peaks reach the line ${leftS} s later`);
  t.ok(leftS >= HORIZON / 1000 - 15 && leftS <= HORIZON / 1000 + 60, 'about the horizon before the peaks do, not before the mean does');
});

t.test('a leak that would take longer than the horizon does not warn', async (t) => {
  // +0.05 MB/s from 300 MB for 2 h: 660 MB at the end, 2 h from the line. Clean and noisy.
  const slow = (i: number) => 300 * MB + 0.05 * MB * (i * STEP_MS / 1000);
  t.same(run(projector(), 1_440, slow), [], 'clean');
  const r = noise(11);
  t.same(run(projector(), 1_440, (i) => slow(i) + 10 * MB * r()), [], 'noisy');
  // The same leak with a 3 h horizon does warn: the horizon, not the fit, kept it quiet.
  t.equal(run(projector({ horizonMs: 3 * 3_600_000 }), 1_440, slow).length, 1, 'with a 3 h horizon: one warning');
});

t.test('no trend before the minimum window', async (t) => {
  // A dyno 60 s from its limit when sampling starts: no warning until MIN_SAMPLES samples.
  const w = run(projector(), 40, (i) => 900 * MB + 1 * MB * (i * STEP_MS / 1000));
  t.equal(w.length, 1);
  t.equal(w[0]!.i, MIN_SAMPLES - 1, `first at sample ${MIN_SAMPLES} (2 min of samples)`);
});

t.test('episodes: again only after the trend went away and came back, and not within the horizon of the last', async (t) => {
  // Leak to ~800 MB (warned), hold flat 10 min, free down to 300 MB, leak again.
  const at = (i: number) => {
    if (i < 190) return (300 + 2.5 * i) * MB;          // +0.5 MB/s
    if (i < 310) return 775 * MB;                       // plateau: the trend goes away
    if (i < 311) return 300 * MB;                       // a restart of the app's cache
    return (300 + 2.5 * (i - 311)) * MB;                // the same leak again
  };
  const w = run(projector(), 500, at);
  t.equal(w.length, 2, `two episodes, two warnings (at samples ${w.map((x) => x.i).join(', ')})`);
  t.ok(w[0]!.i < 190 && w[1]!.i > 311, 'one per leak');

  // The leak pauses 5 min (long enough to end the episode) and resumes: a second episode,
  // warned again only if the rate limit allows.
  const resume = 175 + REARM_SAMPLES + 60;
  const stutter = (i: number) => (i < 175 ? 300 + 2.5 * i : i < resume ? 737.5 : 737.5 + 2.5 * (i - resume)) * MB;
  t.equal(run(projector({ minIntervalMs: 0 }), resume + 110, stutter).length, 2, 'without a rate limit: warned again');
  t.equal(run(projector({ minIntervalMs: 60 * 60_000 }), resume + 110, stutter).length, 1, 'minIntervalMs 1 h: once');

  // A new container starts a new episode at once.
  const q = projector();
  t.equal(run(q, 175, (i) => (300 + 2.5 * i) * MB).length, 1);
  q.reset();
  t.equal(run(q, 175, (i) => (300 + 2.5 * i) * MB).length, 1, 'after reset: warned again');
});

t.test('PSI raises urgency only with a trend: it stretches the horizon up to 2x, never warns on its own', async (t) => {
  t.equal(pressuredHorizonMs(HORIZON, undefined), HORIZON, 'no PSI (cgroup v1): the horizon');
  t.equal(pressuredHorizonMs(HORIZON, 0), HORIZON);
  t.equal(pressuredHorizonMs(HORIZON, 25), HORIZON * 1.5);
  t.equal(pressuredHorizonMs(HORIZON, 50), HORIZON * 2);
  t.equal(pressuredHorizonMs(HORIZON, 90), HORIZON * 2, 'capped at 2x');

  // A steady dyno stalled 80 % of the time (its page cache thrashing): no trend, no warning.
  const r = noise(5);
  t.same(run(projector(), 2_000, () => 950 * MB + 10 * MB * r(), () => 80), [], 'pressure alone never warns');

  // The linear leak of the first test: under 40 % pressure the horizon is 18 min, so the
  // warning comes at the first sample within 18 min (#74, not #170), with the same projection.
  const leak = (i: number) => 300 * MB + 0.5 * MB * (i * STEP_MS / 1000);
  const w = run(projector(), 280, leak, () => 40);
  t.equal(w.length, 1);
  t.equal(w[0]!.i, 74, 'earlier: 1448 s - 18 min = 368 s, sample 73.6');
  t.equal(w[0]!.horizonMs, HORIZON * 1.8);
  t.ok(Math.abs(w[0]!.projectedMs - (LIMIT - leak(74)) / (0.5 * MB) * 1000) <= 1, 'the projected time is the trend\'s own');
});

t.test('warnHorizonMs 0 turns warnings off', async (t) => {
  t.same(run(projector({ horizonMs: 0 }), 280, (i) => (300 + 2.5 * i) * MB), []);
});

t.test('PSI some avg10 from cgroup v2 memory.pressure', async (t) => {
  t.equal(parsePressureSome10('some avg10=12.34 avg60=5.00 avg300=1.00 total=123456\nfull avg10=1.00 avg60=0.50 avg300=0.10 total=2345\n'), 12.34);
  t.equal(parsePressureSome10('some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n'), 0);
  t.equal(parsePressureSome10(undefined), undefined, 'no file (cgroup v1)');
  t.equal(parsePressureSome10(''), undefined);
  t.equal(parsePressureSome10('full avg10=3.00 avg60=0 avg300=0 total=1\n'), undefined, 'only the `some` line counts');
});

t.test('bad options are refused', async (t) => {
  t.throws(() => new MemoryProjector({ limitBytes: 0, horizonMs: HORIZON }), RangeError);
  t.throws(() => new MemoryProjector({ limitBytes: LIMIT, horizonMs: -1 }), RangeError);
  t.throws(() => new MemoryProjector({ limitBytes: LIMIT, horizonMs: HORIZON, minSamples: 30, windowSamples: 20 }), RangeError);
});
