// The agent's own series read at scrape time from their owners: the coordinator link's state,
// reconnects and unacked events (link/session.ts status()), the journal's unwritten events,
// and the journal file's size (one stat), the slug cache's size (slugs/store.ts stats()), the log shipper's queue and drops, and the
// event loop's delay (perf_hooks.monitorEventLoopDelay, reset at each scrape so that each
// value is the interval since the last). All reads but the journal's stat are in memory.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Counter, Gauge } from '@prometheus-io/client';
import type { LinkStatus } from '../link/session.js';
import type { AgentMetrics } from './agent-metrics.js';

export const LINK_STATES = ['connecting', 'handshaking', 'ready', 'waiting'] as const;

export interface AgentSources {
  link: () => LinkStatus;
  slugs: () => { entries: number; bytes: number };
  logs: () => { queued: number; dropped: number; shipped: number };
  /** The event journal file's size (one stat per scrape). */
  journalBytes?: () => number;
}

export function registerAgentCollector(metrics: AgentMetrics, sources: AgentSources): { stop(): void } {
  const registers = [metrics.registry];
  const gauge = (name: string, help: string, value: () => number): void => {
    new Gauge({ name, help, registers, collect() { this.set(value()); } });
  };
  // A count another owner keeps (monotonic for the life of the process), exported as a counter.
  const total = (name: string, help: string, value: () => number): void => {
    let last = 0;
    new Counter({ name, help, registers, collect() { const v = value(); if (v > last) this.inc(v - last); last = Math.max(last, v); } });
  };
  new Gauge<'state'>({
    name: 'slipway_link_state', help: 'The coordinator link state: 1 for the current one.', labelNames: ['state'], registers,
    collect() {
      const now = sources.link().state;
      for (const state of LINK_STATES) this.set({ state }, state === now ? 1 : 0);
    },
  });
  gauge('slipway_link_up', '1 while the coordinator link is ready (welcomed).', () => (sources.link().state === 'ready' ? 1 : 0));
  total('slipway_link_reconnects_total', 'Times the link was redialled since the agent started.', () => sources.link().reconnects);
  gauge('slipway_link_unacked_events', 'Events the coordinator has not acknowledged.', () => sources.link().unackedEvents);
  gauge('slipway_link_dropped_events', 'Events dropped from the outbox (over its bound).', () => sources.link().droppedEvents);
  gauge('slipway_journal_unwritten_events', 'Pending events not yet known to be in the event journal file.', () => sources.link().journal?.unwritten ?? 0);
  total('slipway_journal_failed_writes_total', 'Failed event journal writes since the agent started.', () => sources.link().journal?.failedWrites ?? 0);
  gauge('slipway_journal_bytes', "Size of the event journal's file, bytes.", () => sources.journalBytes?.() ?? 0);
  gauge('slipway_slug_cache_bytes', 'Bytes of extracted slugs in the cache.', () => sources.slugs().bytes);
  gauge('slipway_slug_cache_entries', 'Slugs in the cache.', () => sources.slugs().entries);
  gauge('slipway_log_lines_queued', 'Log lines waiting in the shipper queue.', () => sources.logs().queued);
  total('slipway_log_lines_dropped_total', 'Log lines dropped because the shipper queue was full.', () => sources.logs().dropped);
  total('slipway_log_lines_shipped_total', 'Log lines taken for shipping to the coordinator.', () => sources.logs().shipped);
  const loop = monitorEventLoopDelay({ resolution: 20 });
  loop.enable();
  const delay = (v: number) => (Number.isFinite(v) ? v / 1e9 : 0);
  // Three gauges, not one with a quantile label: a quantile label belongs to a summary type
  // (promtool lints it), and these are the loop's own histogram read and reset at each scrape.
  gauge('slipway_event_loop_delay_p50_seconds', 'Median event loop delay since the last scrape.', () => delay(loop.percentile(50)));
  gauge('slipway_event_loop_delay_p99_seconds', '99th percentile event loop delay since the last scrape.', () => delay(loop.percentile(99)));
  gauge('slipway_event_loop_delay_max_seconds', 'Longest event loop delay since the last scrape.', () => {
    const max = delay(loop.max);
    loop.reset();
    return max;
  });
  return { stop: () => loop.disable() };
}
