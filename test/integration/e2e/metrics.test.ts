// Prometheus `/metrics` end to end (issue 14, item 1): the agent executable (dist/), a runc
// dyno on the busybox stack, a coordinator of the test's own (the SDK's AgentServer). The
// exposition passes `promtool check metrics` (Debian's prometheus package, scripts/setup.sh);
// the per-dyno series carry {app, dyno} only and are gone on the scrape after the dyno stops;
// without the bearer token the endpoint answers 401.
import t from 'tap';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentServer, type DynoSpec, type Result } from '../../../shared/coordinator-sdk/index.js';
import { AGENT_WS_PATH } from '../../../shared/protocol.js';
import { eventually, quietLogger, uniqueName } from '../../helpers/host.js';
import { getJson, http } from '../../helpers/http.js';
import { spawnBin } from '../../helpers/processes.js';
import { e2eHost } from './fixtures/e2e-host.js';

/** promtool's verdict: its exit code and everything it printed (lint problems included). */
function promtool(text: string): { status: number | null; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

/** `name{labels} value` lines of one metric family. */
function series(text: string, name: string): { labels: Record<string, string>; value: number }[] {
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `)).map((l) => {
    const m = /^[^{ ]+(?:\{(.*)\})? (\S+)$/.exec(l)!;
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[1] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k!] = v!;
    return { labels, value: Number(m[2]) };
  });
}

t.test('GET /metrics: promtool-clean, per-dyno {app, dyno} series that go with the dyno, token required', async (t) => {
  t.equal(spawnSync('promtool', ['--version']).status, 0, 'promtool is installed (scripts/setup.sh)');
  const host = await e2eHost(t, 'metrics', { 'public/index.html': 'hi\n' });
  const { app, stateDir } = host;
  const agentId = `agent-${app}`;
  let ready = 0;
  const server = new AgentServer({
    token: host.token, coordinatorId: 'metrics-test', log: quietLogger(),
    app: { hello: () => undefined, ready: () => { ready += 1; }, event: () => undefined, capacity: () => undefined },
  });
  const httpServer = createServer();
  server.attach(httpServer);
  httpServer.listen(0, '127.0.0.1');
  await once(httpServer, 'listening');
  t.teardown(async () => {
    await server.close(0);
    httpServer.closeAllConnections();
    await new Promise((r) => httpServer.close(r));
  });
  const url = `ws://127.0.0.1:${(httpServer.address() as AddressInfo).port}${AGENT_WS_PATH}`;
  const agent = spawnBin('agent', [
    'serve', '--config', host.configFile, '--coordinator', url, '--token-file', host.tokenFile, '--state-dir', stateDir,
    '--address', '127.0.0.1', '--cgroup-parent', host.cgroupParent, '--diagnostics-listen', '127.0.0.1:0',
    '--port-range', '34700-34799', '--reserved-memory-mb', '512', '--stop-grace-ms', '1000', '--agent-id', agentId,
  ]);
  host.procs.push(agent);
  const diag = (await agent.waitFor('agent started', 30_000)).diagnosticsUrl as string;
  const auth = { authorization: `Bearer ${(await readFile(join(stateDir, 'agent', 'diagnostics.token'), 'utf8')).trim()}` };
  const scrape = async (): Promise<string> => {
    const r = await http('GET', `${diag}/metrics`, undefined, auth);
    t.equal(r.status, 200);
    return r.body;
  };
  await eventually('the agent to connect', async () => ready > 0 || undefined, 20_000);

  const spec: DynoSpec = {
    id: `${app}-worker-${uniqueName('').slice(0, 4)}`, app, type: 'worker', name: 'worker.1', release: 'v7',
    size: { name: 'test', memoryMb: 64, cpuShares: 64, pidsLimit: 64 }, command: 'echo hello; sleep 600', env: {},
    slug: { url: host.slugUrl, sha256: host.slug.sha256 }, stack: 'busybox',
  };
  const command = (body: Parameters<AgentServer['sendCommand']>[1]): Promise<Result> => server.sendCommand(agentId, body);
  t.match(await command({ type: 'start_dyno', dyno: spec }), { ok: true });
  await eventually('the dyno up', async () => ((await getJson(`${diag}/v1/dynos`, auth)) as any[]).find((d) => d.id === spec.id && d.state === 'up'), 30_000);

  const text = await eventually('a scrape with the dyno\'s cgroup stats', async () => {
    const s = await scrape();
    return series(s, 'slipway_dyno_pids').length > 0 ? s : undefined;
  }, 10_000);
  const check = promtool(text);
  t.equal(check.status, 0, 'promtool check metrics exits 0');
  t.equal(check.output, '', `promtool prints no problem${check.output ? `: ${check.output}` : ''}`);

  const perDyno = ['slipway_dyno_memory_working_set_bytes', 'slipway_dyno_memory_rss_bytes', 'slipway_dyno_memory_swap_bytes', 'slipway_dyno_cpu_usage_seconds_total', 'slipway_dyno_pids', 'slipway_dyno_restarts', 'slipway_dyno_start_time_seconds'];
  for (const name of perDyno) t.same(series(text, name), [{ labels: { app, dyno: 'worker.1' }, value: series(text, name)[0]?.value }], `${name} has one series, {app, dyno} only`);
  t.ok(series(text, 'slipway_dyno_pids')[0]!.value >= 1, 'the dyno has processes');
  t.ok(series(text, 'slipway_dyno_memory_working_set_bytes')[0]!.value > 0, 'and a working set');
  t.match(series(text, 'slipway_dyno_info'), [{ labels: { app, dyno: 'worker.1', release: 'v7', process_type: 'worker', dyno_id: spec.id, runtime: 'runc' }, value: 1 }], 'the info metric carries the rest');
  t.same(series(text, 'slipway_dyno_state').filter((s) => s.value === 1).map((s) => s.labels.state), ['up']);
  t.equal(series(text, 'slipway_link_up')[0]?.value, 1, 'the link is up');
  t.ok(series(text, 'slipway_journal_bytes')[0]!.value > 0, 'the event journal has been written');
  t.same(series(text, 'slipway_commands_total').filter((s) => s.labels.type === 'start_dyno').map((s) => [s.labels.result, s.value]), [['ok', 1]]);
  t.equal(series(text, 'slipway_dyno_start_latency_seconds_count')[0]?.value, 1, 'one start observed');
  t.equal(series(text, 'slipway_slug_cache_lookups_total').find((s) => s.labels.result === 'miss')?.value, 1, 'the slug was a miss');
  t.ok(series(text, 'slipway_slug_download_bytes_total')[0]!.value > 0, 'and was downloaded');

  t.match(await command({ type: 'stop_dyno', dynoId: spec.id, graceMs: 1000 }), { ok: true });
  await eventually('the dyno gone', async () => ((await getJson(`${diag}/v1/dynos`, auth)) as any[]).length === 0 || undefined, 30_000);
  const after = await scrape();
  t.equal(promtool(after).status, 0, 'still promtool-clean');
  for (const name of [...perDyno, 'slipway_dyno_info', 'slipway_dyno_state']) t.same(series(after, name), [], `${name}: the stopped dyno's series are gone`);
  t.equal(series(after, 'slipway_dyno_stops_total')[0]?.value, 1, 'and its stop counted');

  t.equal((await http('GET', `${diag}/metrics`)).status, 401, 'no token: 401');
  t.equal((await http('GET', `${diag}/metrics`, undefined, { authorization: 'Bearer wrong' })).status, 401, 'a wrong token: 401');
});
