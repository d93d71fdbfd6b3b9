// The agent's Prometheus metrics (issue 14, item 1): one owner of a dedicated Registry (never
// the library's global one: two agents in one test process, or a library that registers its
// own, cannot collide) and of the agent-wide counters and the start-latency histogram. The
// parts that count call its small methods (the dyno metrics hook, the command handlers, the
// slug store); what other owners already keep (the link's status, the slug cache's size, the
// live dynos) is read at scrape time by the collectors (dyno-collector.ts, agent-collector.ts),
// so nothing here duplicates state another object owns.
//
// Scrape cost: O(live dynos) with one bounded cgroup read each (dyno-collector.ts); nothing
// else touches the disk or a runtime. Labels are bounded sets (reason, state, command type,
// result), never ids: a host with 100+ dynos has one series per dyno per metric, no more.
import { Counter, Histogram, Registry } from '@prometheus-io/client';
import type { DynoHandle, RuntimeDriver } from '../runtime/driver.js';
import type { SlugCacheObserver } from '../slugs/store.js';

/** starting -> up, in seconds: a web dyno binds $PORT in well under a second (a static
 * server) to a minute or two (a JVM; R10's default deadline is 60 s, extended to 120 s). */
export const START_LATENCY_BUCKETS = [0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 90, 120];

/** What the dyno metrics hook keeps of a live container, for the per-dyno collector. */
export interface DynoRunFacts {
  handle: DynoHandle;
  driver: Pick<RuntimeDriver, 'stats'>;
}

export class AgentMetrics {
  readonly registry = new Registry();
  /** Per dyno id, while its container runs (dyno-metrics-hook.ts writes it, the collector reads). */
  readonly runs = new Map<string, DynoRunFacts>();
  /** Crash restarts per dyno id in this agent process; dropped when the dyno is down. */
  readonly restarts = new Map<string, number>();
  readonly dynoStarts: Counter<'kind'>;
  readonly dynoStops: Counter;
  readonly dynoCrashes: Counter<'reason'>;
  readonly memoryQuotaExceeded: Counter;
  readonly startLatency: Histogram;
  readonly commands: Counter<'type' | 'result'>;
  readonly slugCacheLookups: Counter<'result'>;
  readonly slugEvictions: Counter;
  readonly slugEvictedBytes: Counter;
  readonly slugDownloadBytes: Counter;
  readonly slugDownloadSeconds: Counter;
  /** Run before each scrape (the collectors' reads, bounded); their gauges' collect() then
   * only copies what they read. */
  private readonly refreshes: (() => Promise<void>)[] = [];

  constructor() {
    const registers = [this.registry];
    this.dynoStarts = new Counter({ name: 'slipway_dyno_starts_total', help: 'Containers started for dynos, by kind (new, restart, cycle).', labelNames: ['kind'], registers });
    this.dynoStops = new Counter({ name: 'slipway_dyno_stops_total', help: 'Dynos stopped (reached down).', registers });
    this.dynoCrashes = new Counter({ name: 'slipway_dyno_crashes_total', help: 'Dyno crashes by reason (R10 boot timeout, R12 exit timeout, R15 memory, exited, start_failed, other).', labelNames: ['reason'], registers });
    this.memoryQuotaExceeded = new Counter({ name: 'slipway_dyno_memory_quota_exceeded_total', help: 'R14 warnings: a dyno over its memory quota, below the R15 line.', registers });
    this.startLatency = new Histogram({ name: 'slipway_dyno_start_latency_seconds', help: 'Time from starting to up of each dyno container.', buckets: START_LATENCY_BUCKETS, registers });
    this.commands = new Counter({ name: 'slipway_commands_total', help: 'Coordinator commands handled, by type and result (ok, error).', labelNames: ['type', 'result'], registers });
    this.slugCacheLookups = new Counter({ name: 'slipway_slug_cache_lookups_total', help: 'Slug cache lookups by result (hit, miss).', labelNames: ['result'], registers });
    this.slugEvictions = new Counter({ name: 'slipway_slug_cache_evictions_total', help: 'Slugs evicted from the cache.', registers });
    this.slugEvictedBytes = new Counter({ name: 'slipway_slug_cache_evicted_bytes_total', help: 'Bytes of slugs evicted from the cache.', registers });
    this.slugDownloadBytes = new Counter({ name: 'slipway_slug_download_bytes_total', help: 'Compressed bytes of slugs downloaded.', registers });
    this.slugDownloadSeconds = new Counter({ name: 'slipway_slug_download_seconds_total', help: 'Time spent downloading and extracting slugs.', registers });
    for (const kind of ['new', 'restart', 'cycle']) this.dynoStarts.labels(kind).inc(0);
    for (const reason of ['R10', 'R12', 'R15', 'exited', 'start_failed', 'other']) this.dynoCrashes.labels(reason).inc(0);
    for (const result of ['hit', 'miss']) this.slugCacheLookups.labels(result).inc(0);
  }

  /** The slug store's observer (slugs/store.ts). */
  slugObserver(): SlugCacheObserver {
    return {
      lookup: (hit) => this.slugCacheLookups.labels(hit ? 'hit' : 'miss').inc(),
      evicted: (bytes) => { this.slugEvictions.inc(); this.slugEvictedBytes.inc(bytes); },
      downloaded: (bytes, seconds) => { this.slugDownloadBytes.inc(bytes); this.slugDownloadSeconds.inc(seconds); },
    };
  }

  /** Counts each command's result (link/handlers/index.ts). */
  command(type: string, ok: boolean): void {
    this.commands.labels(type, ok ? 'ok' : 'error').inc();
  }

  restartsOf(dynoId: string): number {
    return this.restarts.get(dynoId) ?? 0;
  }

  beforeScrape(refresh: () => Promise<void>): void {
    this.refreshes.push(refresh);
  }

  /** The text exposition, for the diagnostics server's `GET /metrics`. */
  async exposition(): Promise<{ contentType: string; text: string }> {
    await Promise.all(this.refreshes.map((r) => r()));
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }
}
