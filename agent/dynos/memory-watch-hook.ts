// Heroku's memory rules for one dyno, applied to samples of its cgroup (memory-policy.ts judges
// them): R14 is a warning, a `slipway[web.1]` line at most once per r14IntervalMs (on the
// dyno's clock) while the dyno stays over its quota; R15 kills the dyno, which is then reported
// crashed with DYNO_MEMORY_EXCEEDED and restarted like any crash. The manager samples every
// dyno every few seconds on one shared timer (DynoManager.startMemorySampling); a dyno whose
// container is not live (not started yet, exited, being stopped or cycled) is skipped. The
// last sample belongs to its container: it is dropped when the container is removed.
import type { RuntimeDriver } from '../runtime/driver.js';
import { MemoryPolicy } from './memory-policy.js';
import { reasons } from './reasons.js';
import type { ContainerRun, DynoControl, DynoHook } from './hooks.js';

/** The last memory sample of a dyno, for the capacity report and diagnostics. */
export interface DynoMemory {
  quotaBytes: number;
  limitBytes: number;
  workingSetBytes: number;
  swapBytes: number;
  r14Count: number;
  sampledAt: string;
}

const MB = 1024 * 1024;
const mb = (bytes: number) => Math.round(bytes / MB);

export class MemoryWatchHook implements DynoHook {
  readonly name = 'memory-watch';
  private last: DynoMemory | undefined;
  private readonly policy: MemoryPolicy;
  private readonly quotaBytes: number;

  constructor(
    private readonly dyno: DynoControl,
    private readonly driver: Pick<RuntimeDriver, 'stats'>,
    settings: { r15Multiple: number; r14IntervalMs: number },
  ) {
    this.quotaBytes = dyno.spec.size.memoryMb * MB;
    this.policy = new MemoryPolicy({ quotaBytes: this.quotaBytes, ...settings, now: () => dyno.clock.monotonic() });
  }

  /** The last sample of the current container, if it has been sampled. */
  memory(): DynoMemory | undefined {
    return this.last;
  }

  predestroy(): void {
    this.last = undefined;
  }

  /** Reads the container's memory once and applies R14/R15. */
  async sample(run: ContainerRun): Promise<void> {
    const state = this.dyno.current;
    if (!this.dyno.live(run) || !run.handle || (state !== 'up' && state !== 'starting')) return;
    const stats = await this.driver.stats(run.handle).catch(() => undefined);
    if (!stats || !this.dyno.live(run)) return;
    const sample = { workingSetBytes: stats.workingSetBytes, swapBytes: stats.swapBytes };
    const verdict = this.policy.judge(sample);
    this.last = {
      quotaBytes: this.quotaBytes, limitBytes: this.policy.limitBytes, ...sample,
      r14Count: this.policy.r14Count, sampledAt: new Date(this.dyno.clock.now()).toISOString(),
    };
    const source = `slipway[${this.dyno.spec.name}]`;
    const fields = { source, totalMb: mb(verdict.totalBytes), quotaMb: mb(this.quotaBytes) };
    if (verdict.action === 'r14') {
      const text = reasons.quotaExceededText(verdict.totalBytes, this.quotaBytes);
      this.dyno.log.warn({ ...fields, code: 'R14' }, text);
      this.dyno.system(text);
    } else if (verdict.action === 'r15') {
      const reason = reasons.memoryExceeded(verdict.totalBytes, this.quotaBytes);
      this.dyno.log.error({ ...fields, code: 'R15' }, `${reason.message}; killing the dyno`);
      await this.dyno.kill(run, reason);
    }
  }
}
