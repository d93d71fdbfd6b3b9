// The dyno metrics hook and the per-dyno collector (agent/metrics/), on fakes: a dyno that is
// only its spec, its reported status and a clock the test moves, and a driver whose stats()
// the test answers. What a real runc dyno adds (cgroup numbers, promtool) is in
// test/integration/e2e/metrics.test.ts.
import t from 'tap';
import type { DynoStateName, DynoStatus, WireError } from '../../../../shared/protocol.js';
import type { DynoStats } from '../../../../agent/runtime/driver.js';
import type { ContainerRun, DynoControl } from '../../../../agent/dynos/hooks.js';
import { AgentMetrics } from '../../../../agent/metrics/agent-metrics.js';
import { registerDynoCollector } from '../../../../agent/metrics/dyno-collector.js';
import { DynoMetricsHook, crashReason } from '../../../../agent/metrics/dyno-metrics-hook.js';
import { dynoSpec } from '../../../helpers/fake-dyno.js';

function fakeDyno(id = 'app1-web-1-abc', name = 'web.1') {
  let ms = 0;
  const spec = dynoSpec({ id, name, release: 'v3' });
  const status: DynoStatus = { id, app: spec.app, type: spec.type, name, release: 'v3', state: 'starting', memoryMb: 512, since: new Date(0).toISOString() };
  const dyno = { spec, clock: { monotonic: () => ms, now: () => ms }, status: () => status } as unknown as DynoControl;
  return { dyno, status, advance: (n: number) => { ms += n; } };
}

const stats: DynoStats = { memoryUsageBytes: 200, workingSetBytes: 150, rssBytes: 100, swapBytes: 0, cpuUsageNs: 2.5e9, pids: 3, oomKills: 0, throttledPeriods: 7 };

async function values(metrics: AgentMetrics, name: string): Promise<{ labels: Record<string, string | number>; value: number }[]> {
  const m = (await metrics.registry.getMetricsAsJSON()).find((x) => x.name === name);
  return (m?.values ?? []).map((v) => ({ labels: v.labels as Record<string, string | number>, value: v.value }));
}

t.test('crash reasons map to the R-codes; R14 is not among them', async (t) => {
  t.equal(crashReason('DYNO_BOOT_TIMEOUT'), 'R10');
  t.equal(crashReason('DYNO_STOP_TIMEOUT'), 'R12');
  t.equal(crashReason('DYNO_MEMORY_EXCEEDED'), 'R15');
  t.equal(crashReason('DYNO_OOM_KILLED'), 'R15');
  t.equal(crashReason('DYNO_CRASHED'), 'exited');
  t.equal(crashReason('SLUG_CHECKSUM_MISMATCH'), 'start_failed');
});

t.test('starts, crashes by reason, restarts, stops and the start latency, through entered()', async (t) => {
  const metrics = new AgentMetrics();
  const { dyno, status, advance } = fakeDyno();
  const hook = new DynoMetricsHook(dyno, { stats: async () => stats }, metrics);
  const enter = (to: DynoStateName, from: DynoStateName | null, reason?: WireError) => {
    status.state = to;
    if (reason) status.reason = reason;
    else delete status.reason;
    hook.entered(to, from);
  };
  enter('starting', null);
  advance(2_500);
  enter('up', 'starting');
  enter('crashed', 'up', { code: 'DYNO_MEMORY_EXCEEDED', message: 'R15', retryable: false });
  enter('starting', 'crashed');
  advance(70_000);
  enter('crashed', 'starting', { code: 'DYNO_BOOT_TIMEOUT', message: 'R10', retryable: false });
  enter('starting', 'crashed');
  enter('down', 'starting');

  const crashes = Object.fromEntries((await values(metrics, 'slipway_dyno_crashes_total')).map((v) => [v.labels.reason, v.value]));
  t.same(crashes, { R10: 1, R12: 0, R15: 1, exited: 0, start_failed: 0, other: 0 });
  const starts = Object.fromEntries((await values(metrics, 'slipway_dyno_starts_total')).map((v) => [v.labels.kind, v.value]));
  t.same(starts, { new: 1, restart: 2, cycle: 0 });
  t.same(await values(metrics, 'slipway_dyno_stops_total'), [{ labels: {}, value: 1 }]);
  const latency = await values(metrics, 'slipway_dyno_start_latency_seconds');
  t.equal(latency.find((v) => v.labels.le === 2)?.value, 0, 'the 2.5 s start is above the 2 s bucket...');
  t.equal(latency.find((v) => v.labels.le === 5)?.value, 1, '...and in the 5 s one');
  t.equal(latency.find((v) => v.labels.le === '+Inf')?.value, 1, 'the start that never came up is not observed');
  t.equal(metrics.restartsOf(status.id), 0, 'a stopped dyno\'s restart count is dropped');
});

t.test('the per-dyno series follow the live dynos, {app, dyno} only; a stopped dyno\'s are gone', async (t) => {
  const metrics = new AgentMetrics();
  const a = fakeDyno('app1-web-1-abc', 'web.1');
  const b = fakeDyno('app1-web-2-def', 'web.2');
  let live = [a.status, b.status];
  registerDynoCollector(metrics, { list: () => live, memoryByDyno: () => [] }, 'runc');
  let slow = false;
  for (const d of [a, b]) {
    const hook = new DynoMetricsHook(d.dyno, { stats: () => (slow && d === b ? new Promise(() => undefined) : Promise.resolve(stats)) }, metrics);
    d.status.state = 'up';
    hook.poststart({ handle: { driver: 'runc', dynoId: d.status.id, containerId: `slipway-${d.status.id}`, dir: '/x', startedAt: new Date(1_000_000).toISOString() } } as unknown as ContainerRun);
  }
  const { text } = await metrics.exposition();
  t.match(text, 'slipway_dyno_pids{app="app1",dyno="web.1"} 3');
  t.match(text, 'slipway_dyno_cpu_usage_seconds_total{app="app1",dyno="web.2"} 2.5');
  t.match(text, 'slipway_dyno_start_time_seconds{app="app1",dyno="web.1"} 1000');
  t.match(text, /slipway_dyno_info\{app="app1",dyno="web.1",release="v3",process_type="web",size="512",runtime="runc",dyno_id="app1-web-1-abc"\} 1/);
  for (const v of await values(metrics, 'slipway_dyno_memory_working_set_bytes')) t.same(Object.keys(v.labels).sort(), ['app', 'dyno']);

  live = [a.status];
  const after = (await metrics.exposition()).text;
  t.notMatch(after, 'dyno="web.2"', 'web.2 is no longer listed: none of its series remain');
  t.match(after, 'dyno="web.1"');

  // A dyno whose stats hang does not hold the scrape past STATS_TIMEOUT_MS.
  live = [a.status, b.status];
  slow = true;
  const started = Date.now();
  await metrics.exposition();
  t.ok(Date.now() - started < 2_000, 'the scrape is bounded');
});
