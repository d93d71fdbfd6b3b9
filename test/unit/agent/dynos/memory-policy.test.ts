import t from 'tap';
import { MemoryPolicy } from '../../../../agent/dynos/memory-policy.js';

const MB = 1024 * 1024;

function clocked(r15Multiple = 2) {
  let now = 0;
  const policy = new MemoryPolicy({ quotaBytes: 512 * MB, r15Multiple, r14IntervalMs: 60_000, now: () => now });
  return { policy, advance: (ms: number) => { now += ms; } };
}

t.test('under the quota is fine; page cache is not counted, swap is', async (t) => {
  const { policy } = clocked();
  t.same(policy.judge({ workingSetBytes: 512 * MB, swapBytes: 0 }), { action: 'ok', totalBytes: 512 * MB }, 'at the quota exactly');
  t.equal(policy.judge({ workingSetBytes: 500 * MB, swapBytes: 20 * MB }).action, 'r14', 'swap counts toward the quota');
  t.equal(policy.limitBytes, 1024 * MB, 'the hard limit is twice the quota');
});

t.test('R14 at most once per interval while over; R15 at the multiple, never rate-limited', async (t) => {
  const { policy, advance } = clocked();
  const over = { workingSetBytes: 600 * MB, swapBytes: 0 };
  t.equal(policy.judge(over).action, 'r14');
  advance(30_000);
  t.equal(policy.judge(over).action, 'ok', 'within the interval: no second warning');
  advance(30_000);
  t.equal(policy.judge(over).action, 'r14', 'an interval later: warned again');
  t.equal(policy.r14Count, 2);
  t.equal(policy.judge({ workingSetBytes: 1000 * MB, swapBytes: 24 * MB }).action, 'r15');
  t.equal(policy.judge({ workingSetBytes: 1024 * MB, swapBytes: 0 }).action, 'r15');
});

t.test('multiple 1: the limit is the quota, no R14 phase and no sampled R15 (the kernel OOM-kills)', async (t) => {
  const { policy } = clocked(1);
  t.equal(policy.limitBytes, 512 * MB);
  t.equal(policy.judge({ workingSetBytes: 512 * MB, swapBytes: 0 }).action, 'ok');
});

t.test('bad options are refused', async (t) => {
  t.throws(() => new MemoryPolicy({ quotaBytes: 0, r15Multiple: 2, r14IntervalMs: 1 }), RangeError);
  t.throws(() => new MemoryPolicy({ quotaBytes: MB, r15Multiple: 0.5, r14IntervalMs: 1 }), RangeError);
});
