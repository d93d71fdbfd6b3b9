// The per-dyno series, produced at scrape time from the live dynos (the manager's list, the
// memory watch's last sample, and one cgroup read of each running container), as kubelet's
// resource collector does: a stopped dyno is not listed, so its series are gone from the next
// scrape. Each gauge is reset() and refilled in its collect(). Labels are {app, dyno} only (dyno
// = web.1); the info metric carries the rest (release, process type, size, runtime, dyno id),
// to be joined on by `* on(app, dyno) group_left(release) slipway_dyno_info`.
//
// Scrape cost, bounded for a host with 100+ dynos: one driver.stats() per running container
// (a handful of small cgroup file reads, no runtime CLI), all in parallel, each bounded by
// STATS_TIMEOUT_MS; one that does not answer in time keeps its previous read (or shows no
// resource series this scrape). Nothing else is read per dyno.
import { Counter, Gauge } from '@prometheus-io/client';
import type { DynoStatus } from '../../shared/protocol.js';
import type { DynoStats } from '../runtime/driver.js';
import type { DynoMemory } from '../dynos/memory-watch-hook.js';
import type { AgentMetrics } from './agent-metrics.js';

/** A cgroup read takes well under 10 ms; 1 s means a stalled file system, not a slow dyno. */
export const STATS_TIMEOUT_MS = 1_000;

export const DYNO_STATES = ['starting', 'up', 'crashed', 'stopping', 'down'] as const;

/** What the collector reads of the dynos (DynoManager has these). */
export interface DynoSource {
  list(): DynoStatus[];
  memoryByDyno(): (DynoMemory & { id: string })[];
}

type DynoLabels = 'app' | 'dyno';

export function registerDynoCollector(metrics: AgentMetrics, dynos: DynoSource, runtime: string): void {
  const registers = [metrics.registry];
  let live: DynoStatus[] = [];
  let memory = new Map<string, DynoMemory>();
  const stats = new Map<string, DynoStats>();

  metrics.beforeScrape(async () => {
    live = dynos.list();
    memory = new Map(dynos.memoryByDyno().map((m) => [m.id, m]));
    const ids = new Set(live.map((d) => d.id));
    for (const id of stats.keys()) if (!ids.has(id) || !metrics.runs.has(id)) stats.delete(id);
    await Promise.all(live.map(async (d) => {
      const run = metrics.runs.get(d.id);
      if (!run) return;
      const s = await bounded(run.driver.stats(run.handle).catch(() => undefined), STATS_TIMEOUT_MS);
      if (s !== 'timeout') {
        if (s) stats.set(d.id, s);
        else stats.delete(d.id);
      }
    }));
  });

  // A cumulative count the cgroup keeps (CPU seconds, throttled periods) is a counter: refilled
  // at each scrape like the gauges; a new container of the dyno starts it again from 0, which
  // Prometheus's rate() reads as a counter reset.
  const perDynoCounter = (name: string, help: string, value: (d: DynoStatus) => number | undefined): void => {
    new Counter<DynoLabels>({
      name, help, labelNames: ['app', 'dyno'], registers,
      collect() {
        this.reset();
        for (const d of live) {
          const v = value(d);
          if (v !== undefined) this.inc({ app: d.app, dyno: d.name }, v);
        }
      },
    });
  };
  const perDyno = (name: string, help: string, value: (d: DynoStatus) => number | undefined): void => {
    new Gauge<DynoLabels>({
      name, help, labelNames: ['app', 'dyno'], registers,
      collect() {
        this.reset();
        for (const d of live) {
          const v = value(d);
          if (v !== undefined) this.set({ app: d.app, dyno: d.name }, v);
        }
      },
    });
  };

  new Gauge<DynoLabels | 'release' | 'process_type' | 'size' | 'runtime' | 'dyno_id'>({
    name: 'slipway_dyno_info', help: 'One series per live dyno, value 1, carrying what the {app, dyno} series leave out.',
    labelNames: ['app', 'dyno', 'release', 'process_type', 'size', 'runtime', 'dyno_id'], registers,
    collect() {
      this.reset();
      for (const d of live) this.set({ app: d.app, dyno: d.name, release: d.release ?? '', process_type: d.type, size: String(d.memoryMb), runtime, dyno_id: d.id }, 1);
    },
  });
  new Gauge<DynoLabels | 'state'>({
    name: 'slipway_dyno_state', help: 'The state of each live dyno: 1 for the current one, 0 for the others.',
    labelNames: ['app', 'dyno', 'state'], registers,
    collect() {
      this.reset();
      for (const d of live) for (const state of DYNO_STATES) this.set({ app: d.app, dyno: d.name, state }, d.state === state ? 1 : 0);
    },
  });
  const s = (d: DynoStatus) => stats.get(d.id);
  perDyno('slipway_dyno_memory_working_set_bytes', 'Working set of the dyno (cgroup usage minus inactive file cache), as kubelet counts it.', (d) => s(d)?.workingSetBytes ?? memory.get(d.id)?.workingSetBytes);
  perDyno('slipway_dyno_memory_rss_bytes', 'Anonymous resident memory of the dyno (cgroup total_rss / anon).', (d) => s(d)?.rssBytes);
  perDyno('slipway_dyno_memory_swap_bytes', 'Swap used by the dyno.', (d) => s(d)?.swapBytes ?? memory.get(d.id)?.swapBytes);
  perDyno('slipway_dyno_memory_quota_bytes', "The dyno size's memory quota (R14 line).", (d) => memory.get(d.id)?.quotaBytes);
  perDyno('slipway_dyno_memory_r14_warnings', 'R14 warnings of the dyno in this agent process (memory watch).', (d) => memory.get(d.id)?.r14Count);
  perDynoCounter('slipway_dyno_cpu_usage_seconds_total', 'CPU time used by the dyno container (cgroup cpuacct.usage / cpu.stat usage_usec).', (d) => { const v = s(d)?.cpuUsageNs; return v === undefined ? undefined : v / 1e9; });
  perDynoCounter('slipway_dyno_cpu_cfs_throttled_periods_total', 'CFS periods in which the dyno was throttled at its CPU cap.', (d) => s(d)?.throttledPeriods);
  perDyno('slipway_dyno_pids', 'Processes and threads in the dyno cgroup.', (d) => s(d)?.pids);
  perDyno('slipway_dyno_oom_kills', 'OOM kills in the current container cgroup.', (d) => s(d)?.oomKills);
  perDyno('slipway_dyno_restarts', 'Crash restarts of the dyno in this agent process.', (d) => metrics.restartsOf(d.id));
  perDyno('slipway_dyno_start_time_seconds', 'Start time of the dyno current container, in seconds since the epoch.', (d) => { const r = metrics.runs.get(d.id); return r ? Date.parse(r.handle.startedAt) / 1000 : undefined; });
}

async function bounded<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), ms); });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
