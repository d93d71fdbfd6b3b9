// Heroku's memory rules for one dyno, applied to samples of its cgroup (memory-policy.ts judges
// them): R14 is a warning, a `slipway[web.1]` line at most once per r14IntervalMs (on the
// dyno's clock) while the dyno stays over its quota; R15 kills the dyno, which is then reported
// crashed with DYNO_MEMORY_EXCEEDED and restarted like any crash. The manager samples every
// dyno every few seconds on one shared timer (DynoManager.startMemorySampling); a dyno whose
// container is not live (not started yet, exited, being stopped or cycled) is skipped. The
// last sample belongs to its container: it is dropped when the container is removed.
//
// Before R15, a warning (memory-projection.ts judges the trend): when the dyno's working set +
// swap is projected to reach its R15 line within warnHorizonMs, once per episode, a
// `slipway[web.1]: Memory projected to reach the R15 limit in ~6 min` line like R14's and a
// `memory_warning` event to the coordinator (`warned`, the link's memoryWarning), so that it can
// place a replacement before the crash. The warning changes nothing for the dyno itself.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MemoryWarning } from '../../shared/protocol.js';
import type { DynoHandle, RuntimeDriver } from '../runtime/driver.js';
import { MemoryPolicy } from './memory-policy.js';
import { DEFAULT_WARN_HORIZON_MS, MemoryProjector, parsePressureSome10 } from './memory-projection.js';
import { reasons } from './reasons.js';
import type { ContainerRun, DynoControl, DynoHook } from './hooks.js';
import type { DecisionSink } from '../diagnostics/decisions.js';

/** The last memory sample of a dyno, for the capacity report and diagnostics. */
export interface DynoMemory {
  quotaBytes: number;
  limitBytes: number;
  workingSetBytes: number;
  swapBytes: number;
  r14Count: number;
  sampledAt: string;
}

/** The memory settings a dyno's watch takes (config `memory`, agent/config/schema.ts). */
export interface MemoryWatchSettings {
  r15Multiple: number;
  r14IntervalMs: number;
  /** Warn when R15 is projected within this (ms); 0: never. Default DEFAULT_WARN_HORIZON_MS. */
  warnHorizonMs?: number;
  /** Each warning, for the coordinator (AgentLink.memoryWarning). Called synchronously; must
   * not throw. */
  warned?: (warning: MemoryWarning) => void;
  /** Each R14 (the metrics' counter, AgentMetrics.memoryQuotaExceeded); must not throw. */
  r14?: () => void;
  /** PSI `some avg10` of the dyno's cgroup; default readCgroupPressure. */
  pressure?: (handle: DynoHandle) => number | undefined;
}

/** The config's memory block and the link's warning sink, as a dyno's memory settings
 * (start.ts: `memory: memoryWatchSettings(config.memory, link.memoryWarning)`). */
export function memoryWatchSettings(memory: { r15Multiple: number; r14IntervalMs: number; warnHorizonMs?: number }, warned?: (warning: MemoryWarning) => void): MemoryWatchSettings {
  return {
    r15Multiple: memory.r15Multiple, r14IntervalMs: memory.r14IntervalMs,
    ...(memory.warnHorizonMs !== undefined ? { warnHorizonMs: memory.warnHorizonMs } : {}),
    ...(warned ? { warned } : {}),
  };
}

/** cgroup v2's `memory.pressure` of the dyno (PSI), or undefined: on cgroup v1 the file is not
 * there (the dyno's cgroup lives under each controller's hierarchy, not at the root), nor on a
 * kernel without PSI; any failure to read it means "no pressure known", never a failed sample.
 * One small kernel-generated read, synchronous like the other cgroup reads
 * (agent/host/cgroup-stats.ts). */
export function readCgroupPressure(handle: DynoHandle, root = '/sys/fs/cgroup'): number | undefined {
  if (!handle.cgroupPath) return undefined;
  try {
    return parsePressureSome10(readFileSync(join(root, handle.cgroupPath, 'memory.pressure'), 'utf8'));
  } catch {
    return undefined;
  }
}

const MB = 1024 * 1024;
const mb = (bytes: number) => Math.round(bytes / MB);

export class MemoryWatchHook implements DynoHook {
  readonly name = 'memory-watch';
  private last: DynoMemory | undefined;
  private readonly policy: MemoryPolicy;
  private readonly quotaBytes: number;
  private readonly projector: MemoryProjector;
  private readonly warned: ((warning: MemoryWarning) => void) | undefined;
  private readonly pressure: (handle: DynoHandle) => number | undefined;

  constructor(
    private readonly dyno: DynoControl,
    private readonly driver: Pick<RuntimeDriver, 'stats'>,
    private readonly settings: MemoryWatchSettings,
    private readonly decisions?: DecisionSink,
  ) {
    this.quotaBytes = dyno.spec.size.memoryMb * MB;
    const { r15Multiple, r14IntervalMs } = settings;
    this.policy = new MemoryPolicy({ quotaBytes: this.quotaBytes, r15Multiple, r14IntervalMs, now: () => dyno.clock.monotonic() });
    this.projector = new MemoryProjector({ limitBytes: this.policy.limitBytes, horizonMs: settings.warnHorizonMs ?? DEFAULT_WARN_HORIZON_MS });
    this.warned = settings.warned;
    this.pressure = settings.pressure ?? readCgroupPressure;
  }

  /** The last sample of the current container, if it has been sampled. */
  memory(): DynoMemory | undefined {
    return this.last;
  }

  predestroy(): void {
    this.last = undefined;
    this.projector.reset();
  }

  /** Reads the container's memory once and applies R14/R15, then the warning before R15. */
  async sample(run: ContainerRun): Promise<void> {
    const state = this.dyno.current;
    if (!this.dyno.live(run) || !run.handle || (state !== 'up' && state !== 'starting')) return;
    const stats = await this.driver.stats(run.handle).catch(() => undefined);
    if (!stats || !this.dyno.live(run)) return;
    const sample = { workingSetBytes: stats.workingSetBytes, swapBytes: stats.swapBytes };
    const verdict = this.policy.judge(sample);
    const psi = verdict.action === 'r15' ? undefined : this.pressure(run.handle);
    const pressureSome10 = psi === undefined ? undefined : Math.min(100, Math.max(0, psi));
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
      this.settings.r14?.();
    } else if (verdict.action === 'r15') {
      const reason = reasons.memoryExceeded(verdict.totalBytes, this.quotaBytes);
      this.dyno.log.error({ ...fields, code: 'R15' }, `${reason.message}; killing the dyno`);
      if (!this.dyno.status().reason) {
        this.decisions?.about(this.dyno.spec, 'kill', `R15: ${mb(verdict.totalBytes)} MB (working set + swap) over the ${mb(this.policy.limitBytes)} MB line (${mb(this.quotaBytes)} MB quota); SIGKILL`, {
          cause: 'R15', code: reason.code, by: 'agent', workingSetBytes: sample.workingSetBytes, swapBytes: sample.swapBytes,
          totalBytes: verdict.totalBytes, quotaBytes: this.quotaBytes, limitBytes: this.policy.limitBytes,
        });
      }
      await this.dyno.kill(run, reason);
      return;
    }
    this.project(verdict.totalBytes, pressureSome10, source);
  }

  /** Feeds the sample to the projector; on a warning, the line and the event. */
  private project(totalBytes: number, pressureSome10: number | undefined, source: string): void {
    const { action, projection } = this.projector.add({ at: this.dyno.clock.monotonic(), totalBytes, pressureSome10 });
    if (action !== 'warn' || !projection) return;
    const { spec } = this.dyno;
    const warning: MemoryWarning = {
      dynoId: spec.id, app: spec.app, name: spec.name,
      projectedMs: projection.projectedMs, workingSetBytes: totalBytes, limitBytes: this.policy.limitBytes,
      slopeBytesPerSec: Math.round(projection.slopeBytesPerSec),
      ...(pressureSome10 !== undefined ? { pressureSome10 } : {}),
    };
    const text = reasons.memoryProjectedText(projection.projectedMs);
    this.dyno.log.warn({
      source, totalMb: mb(totalBytes), limitMb: mb(this.policy.limitBytes), projectedMs: projection.projectedMs,
      slopeBytesPerSec: warning.slopeBytesPerSec, horizonMs: projection.horizonMs, pressureSome10,
    }, text);
    this.dyno.system(text);
    this.decisions?.about(spec, 'memory_warning', `${text}: ${mb(totalBytes)} MB of ${mb(this.policy.limitBytes)} MB, growing ${Math.round(warning.slopeBytesPerSec / 1024)} KiB/s`, {
      projectedMs: warning.projectedMs, totalBytes, limitBytes: warning.limitBytes, slopeBytesPerSec: warning.slopeBytesPerSec,
      horizonMs: projection.horizonMs, pressureSome10: pressureSome10 ?? null,
    });
    try {
      this.warned?.(warning);
    } catch (err) {
      this.dyno.log.error({ err }, 'could not report a memory warning');
    }
  }
}
