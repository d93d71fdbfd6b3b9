import t from 'tap';
import { DEFAULT_RESTART_POLICY, RestartPolicy } from '../../../../agent/dynos/restart-policy.js';

function clocked(random = 0, opts: Partial<typeof DEFAULT_RESTART_POLICY> = {}) {
  let now = 1_000_000;
  const policy = new RestartPolicy({ ...DEFAULT_RESTART_POLICY, ...opts, now: () => now, random: () => random });
  return { policy, advance: (ms: number) => { now += ms; } };
}

/** Start, run for `upMs`, crash: the delays of `n` such crashes in a row. */
function crashLoop(policy: RestartPolicy, advance: (ms: number) => void, n: number, upMs = 1_000): number[] {
  const delays: number[] = [];
  for (let i = 0; i < n; i++) {
    policy.started('v1');
    advance(upMs);
    const d = policy.crashed();
    delays.push(d);
    advance(d);
  }
  return delays;
}

t.test('first restart at once, then doubling from the base, capped at 20 minutes', async (t) => {
  const { policy, advance } = clocked(0);
  t.same(crashLoop(policy, advance, 11), [0, 10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 640_000, 1_200_000, 1_200_000, 1_200_000]);
  t.equal(policy.count, 11);
});

t.test('jitter adds up to its fraction and never passes the cap', async (t) => {
  const high = clocked(0.999);
  const delays = crashLoop(high.policy, high.advance, 12);
  t.equal(delays[0], 0, 'the first restart stays immediate');
  t.ok(delays[1]! > 12_000 && delays[1]! <= 12_500, `second crash: ${delays[1]} ms is 10 s + up to 25 %`);
  t.equal(Math.max(...delays), DEFAULT_RESTART_POLICY.capMs, 'capped');
  const half = clocked(0.5);
  t.same(crashLoop(half.policy, half.advance, 3), [0, 11_250, 22_500]);
});

t.test('a run that stayed up long enough resets the count; a short one does not', async (t) => {
  const { policy, advance } = clocked(0);
  crashLoop(policy, advance, 4);
  t.equal(policy.count, 4);
  policy.started('v1');
  advance(DEFAULT_RESTART_POLICY.stableAfterMs - 1);
  t.equal(policy.crashed(), 80_000, 'just short of stable: the backoff goes on');
  policy.started('v1');
  advance(DEFAULT_RESTART_POLICY.stableAfterMs);
  t.equal(policy.crashed(), 0, 'stable: this crash is a first crash again');
  t.equal(policy.count, 1);
});

t.test('a new release resets the count', async (t) => {
  const { policy, advance } = clocked(0);
  crashLoop(policy, advance, 5);
  policy.started('v2');
  advance(10);
  t.equal(policy.crashed(), 0);
  t.equal(policy.crashed(), 10_000, 'and counts again from there');
});

t.test('bad options are refused', async (t) => {
  t.throws(() => new RestartPolicy({ ...DEFAULT_RESTART_POLICY, capMs: 5, baseMs: 10 }), RangeError);
  t.throws(() => new RestartPolicy({ ...DEFAULT_RESTART_POLICY, jitter: -1 }), RangeError);
});

t.test('last: how each delay was chosen (the numbers of a restart_scheduled decision)', async (t) => {
  const { policy, advance } = clocked(0);
  t.equal(policy.last, undefined);
  crashLoop(policy, advance, 1);
  t.same(policy.last, { attempt: 1, delayMs: 0, backoffMs: 0, capped: false, reset: false });
  crashLoop(policy, advance, 2);
  t.same(policy.last, { attempt: 3, delayMs: 20_000, backoffMs: 20_000, capped: false, reset: false });
  crashLoop(policy, advance, 10);
  t.same(policy.last, { attempt: 13, delayMs: 20 * 60_000, backoffMs: 10_000 * 2 ** 11, capped: true, reset: false });
  policy.started('v1');
  advance(DEFAULT_RESTART_POLICY.stableAfterMs);
  policy.crashed();
  t.same(policy.last, { attempt: 1, delayMs: 0, backoffMs: 0, capped: false, reset: true }, 'a healthy run started the count again');
});
