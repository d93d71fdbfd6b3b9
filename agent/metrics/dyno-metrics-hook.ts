// A dyno's part of the agent's metrics (agent-metrics.ts): starts by kind, stops, crashes by
// reason, the starting -> up latency, and the live container's handle for the per-dyno
// collector (dyno-collector.ts), dropped when the container is removed. It only counts: it
// changes nothing of the dyno. R14 is a warning, not a crash: it is the memory watch's count,
// exported per dyno by the collector (slipway_dyno_memory_r14_warnings).
import type { DynoStateName } from '../../shared/protocol.js';
import type { RuntimeDriver } from '../runtime/driver.js';
import type { ContainerRun, DynoControl, DynoHook } from '../dynos/hooks.js';
import type { AgentMetrics } from './agent-metrics.js';

/** A crash's reason code (shared/errors.ts) as the metric's bounded `reason` label. */
export function crashReason(code: string | undefined): string {
  switch (code) {
    case 'DYNO_BOOT_TIMEOUT': return 'R10';
    case 'DYNO_STOP_TIMEOUT': return 'R12';
    case 'DYNO_MEMORY_EXCEEDED':
    case 'DYNO_OOM_KILLED': return 'R15';
    case 'DYNO_CRASHED': return 'exited';
    case undefined: return 'other';
    default: return code.startsWith('DYNO_') ? 'other' : 'start_failed';
  }
}

export class DynoMetricsHook implements DynoHook {
  readonly name = 'metrics';
  /** clock.monotonic() when the current start began. */
  private startingAt: number | undefined;

  constructor(private readonly dyno: DynoControl, private readonly driver: Pick<RuntimeDriver, 'stats'>, private readonly metrics: AgentMetrics) {}

  poststart(run: ContainerRun): void {
    if (run.handle) this.metrics.runs.set(this.dyno.spec.id, { handle: run.handle, driver: this.driver });
  }

  predestroy(): void {
    this.metrics.runs.delete(this.dyno.spec.id);
  }

  entered(to: DynoStateName, from: DynoStateName | null): void {
    const m = this.metrics;
    const id = this.dyno.spec.id;
    if (to === 'starting') {
      this.startingAt = this.dyno.clock.monotonic();
      const kind = from === 'crashed' ? 'restart' : from === 'up' ? 'cycle' : 'new';
      if (kind === 'restart') m.restarts.set(id, m.restartsOf(id) + 1);
      m.dynoStarts.labels(kind).inc();
    } else if (to === 'up' && from === 'starting' && this.startingAt !== undefined) {
      m.startLatency.observe((this.dyno.clock.monotonic() - this.startingAt) / 1000);
      this.startingAt = undefined;
    } else if (to === 'crashed') {
      m.dynoCrashes.labels(crashReason(this.dyno.status().reason?.code)).inc();
    } else if (to === 'down') {
      m.dynoStops.inc();
      if (this.dyno.status().reason?.code === 'DYNO_STOP_TIMEOUT') m.dynoCrashes.labels('R12').inc();
      m.restarts.delete(id);
      m.runs.delete(id);
    }
  }
}
