// Heroku's memory semantics for one dyno, as a pure judge of samples (time injected):
//
//   working set + swap above the quota          R14 (Memory quota exceeded): a warning, the
//                                                dyno keeps running; at most once per
//                                                r14IntervalMs while it stays over
//   working set + swap at r15Multiple x quota   R15 (Memory quota vastly exceeded): the dyno
//                                                is killed and restarted
//
// The working set is the cgroup's usage minus its inactive file cache (what the kubelet and
// Heroku count: page cache the kernel can drop is not the app's memory).
//
// For the dyno to run above its quota at all, the kernel's hard limit is the R15 line, not the
// quota: container-spec.ts passes quota x r15Multiple to the runtime as the memory limit (swap
// capped at the same, so no swap beyond it). Reaching that limit is the kernel's OOM kill, read
// from the cgroup's counter and also reported as R15. With r15Multiple 1 the limit is the quota
// itself and there is no R14 phase: a fleet that wants no overcommit at all sets that.
import { DEFAULT_WARN_HORIZON_MS } from './memory-projection.js';

export interface MemoryPolicyOptions {
  quotaBytes: number;
  /** R15 at this multiple of the quota (default 2, Heroku's). */
  r15Multiple: number;
  /** Least time between two R14 warnings of one dyno. */
  r14IntervalMs: number;
  /** Monotonic ms (clock.ts): the rate limit is an interval, and must not see NTP steps. */
  now?: () => number;
}

export interface MemorySample { workingSetBytes: number; swapBytes: number }

export type MemoryVerdict = { action: 'ok' | 'r14' | 'r15'; totalBytes: number };

/** warnHorizonMs: the warning before R15 (memory-projection.ts). */
export const DEFAULT_MEMORY_SETTINGS = { r15Multiple: 2, r14IntervalMs: 60_000, sampleMs: 5_000, warnHorizonMs: DEFAULT_WARN_HORIZON_MS };

/** The hard limit the runtime enforces, quota x r15Multiple: one formula for the agent's dynos
 * and the one-off `dyno run` (container-spec.ts). */
export function memoryLimitBytes(quotaBytes: number, r15Multiple: number): number {
  return Math.floor(quotaBytes * r15Multiple);
}

export class MemoryPolicy {
  private lastR14: number | undefined;
  private r14s = 0;
  private readonly now: () => number;

  constructor(private readonly opts: MemoryPolicyOptions) {
    if (!(opts.quotaBytes > 0 && opts.r15Multiple >= 1 && opts.r14IntervalMs >= 0)) {
      throw new RangeError(`memory policy needs quotaBytes > 0, r15Multiple >= 1, r14IntervalMs >= 0: ${JSON.stringify(opts)}`);
    }
    this.now = opts.now ?? (() => performance.now());
  }

  /** The hard limit the runtime enforces: quota x r15Multiple. */
  get limitBytes(): number {
    return memoryLimitBytes(this.opts.quotaBytes, this.opts.r15Multiple);
  }

  /** R14 warnings issued so far. */
  get r14Count(): number {
    return this.r14s;
  }

  judge(sample: MemorySample): MemoryVerdict {
    const totalBytes = sample.workingSetBytes + sample.swapBytes;
    if (this.opts.r15Multiple > 1 && totalBytes >= this.limitBytes) return { action: 'r15', totalBytes };
    if (totalBytes <= this.opts.quotaBytes) return { action: 'ok', totalBytes };
    const t = this.now();
    if (this.lastR14 !== undefined && t - this.lastR14 < this.opts.r14IntervalMs) return { action: 'ok', totalBytes };
    this.lastR14 = t;
    this.r14s += 1;
    return { action: 'r14', totalBytes };
  }
}
