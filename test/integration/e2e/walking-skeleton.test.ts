// The whole path, with real processes: the reference coordinator and one agent (built
// executables), a real HTTP server serving a slug, runc dynos on overlay mounts. Scale web
// to 2, reach both dynos through the router, scale to 0, and prove nothing is left.
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { busyboxStack, cgroupChildren, eventually, mountsUnder, processesMentioning, removeCgroupParent, runcContainers, tempDir, uniqueName } from '../../helpers/host.js';
import { spawnBin, type Spawned } from '../../helpers/processes.js';
import { makeSlug, serveSlugs } from '../../helpers/slugs.js';
import { getJson, http } from '../../helpers/http.js';
import { execFileSync } from 'node:child_process';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { destroyTestNetwork, dynoNetworksLeft, testAgentConfig } from '../../helpers/network.js';

t.test('a web app from slug to routable and back to nothing', async (t) => {
  const dir = await tempDir(t, 'slipway-e2e-');
  const stateDir = join(dir, 'state');
  const app = uniqueName('e2e');
  const cgroupParent = `/${uniqueName('slipway-test-')}`;
  const token = uniqueName('token-');
  const tokenFile = join(dir, 'token');
  await writeFile(tokenFile, token + '\n', { mode: 0o600 });
  cpSync(busyboxStack(), join(stateDir, 'stacks', 'busybox'), { recursive: true, verbatimSymlinks: true });
  const { file: configFile, network } = await testAgentConfig(dir);

  const slug = await makeSlug(dir, {
    '.profile.d/page.sh': 'mkdir -p /app/public && echo "Hello from $DYNO ($GREETING)" > /app/public/index.html\n',
    'Procfile': 'web: httpd -f -p $PORT -h /app/public\n',
  });
  const slugs = await serveSlugs({ 'app.tgz': slug.bytes });
  t.teardown(() => slugs.close());

  const procs: Spawned[] = [];
  t.teardown(async () => {
    for (const p of procs.reverse()) await p.stop();
    // Safety net if an assertion failed midway: remove whatever the agent left.
    execFileSync(process.execPath, [join(import.meta.dirname, '../../../dist/agent/main.js'), 'cleanup', '--config', configFile, '--state-dir', stateDir, '--cgroup-parent', cgroupParent], { stdio: 'ignore' });
    await destroyTestNetwork(network);
    removeCgroupParent(cgroupParent);
  });

  const coordinator = spawnBin('coordinator', ['serve', '--listen', '127.0.0.1:0', '--router-listen', '127.0.0.1:0'], { SLIPWAY_COORDINATOR_TOKEN: token });
  procs.push(coordinator);
  const listening = await coordinator.waitFor('coordinator listening');
  const apiUrl = listening.apiUrl as string;
  const routerUrl = listening.routerUrl as string;

  const agent = spawnBin('agent', [
    'serve', '--config', configFile, '--coordinator', listening.agentUrl as string, '--token-file', tokenFile, '--state-dir', stateDir,
    '--address', '127.0.0.1', '--cgroup-parent', cgroupParent, '--diagnostics-listen', '127.0.0.1:0',
    '--port-range', '31000-31999', '--reserved-memory-mb', '512', '--stop-grace-ms', '3000', '--agent-id', `agent-${app}`,
  ]);
  procs.push(agent);
  const started = await agent.waitFor('agent started');
  await eventually('the agent to connect', async () => (await getJson(`${apiUrl}/agents`)).find((a: any) => a.id === `agent-${app}` && a.connected));

  // Warm the cache before the release is scaled: the coordinator's prefetch reaches the agent,
  // which answers "not cached" and downloads in the background; its capacity report and its
  // diagnostics then list the slug, and the dyno starts below need no further download.
  const diagUrl = started.diagnosticsUrl as string;
  const diagToken = (await readFile(join(stateDir, 'agent', 'diagnostics.token'), 'utf8')).trim();
  const prefetch = await http('POST', `${apiUrl}/slugs/prefetch`, { slug: { url: slugs.url('app.tgz'), sha256: slug.sha256 } });
  t.equal(prefetch.status, 200, prefetch.body);
  t.same(JSON.parse(prefetch.body).results, [{ agent: `agent-${app}`, ok: true, cached: false }], 'the agent did not have the slug yet');
  const warmed = await eventually('the prefetched slug in a capacity report', async () => {
    const a = (await getJson(`${apiUrl}/agents`)).find((x: any) => x.id === `agent-${app}`);
    return a?.capacity.slugCache.entries === 1 ? a.capacity.slugCache : undefined;
  }, 30_000);
  t.same(warmed.slugs.map((s: any) => s.sha256), [slug.sha256], 'the coordinator sees the prefetched slug');
  const cache = await getJson(`${diagUrl}/v1/slugs`, { authorization: `Bearer ${diagToken}` });
  t.same(cache.slugs.map((s: any) => [s.sha256, s.inUse]), [[slug.sha256, false]], 'diagnostics list the cached slug, not yet in use');
  t.ok(cache.slugs[0].bytes > 0 && cache.freeBytes > 0, 'with its size and the free bytes of the cache');
  const again = await http('POST', `${apiUrl}/slugs/prefetch`, { slug: { url: slugs.url('app.tgz'), sha256: slug.sha256 } });
  t.same(JSON.parse(again.body).results, [{ agent: `agent-${app}`, ok: true, cached: true }], 'a second prefetch finds it cached');

  const formation = (quantity: number) => ({ quantity, size: 'standard-1x', command: 'httpd -f -p $PORT -h /app/public', env: { GREETING: 'config var seen' }, slug: { url: slugs.url('app.tgz'), sha256: slug.sha256 } });
  const put = await http('PUT', `${apiUrl}/apps/${app}/formation/web`, formation(2));
  t.equal(put.status, 200, `formation accepted: ${put.body}`);

  const routes = await eventually('two routes', async () => {
    const r = (await getJson(`${apiUrl}/routes`))[app];
    return r && r.length === 2 ? r : undefined;
  }, 60_000);
  t.equal(routes.length, 2, 'both dynos are routable');
  t.equal(slugs.requests.get('app.tgz'), 1, 'the slug was downloaded once: the prefetch, and no more for two dynos');
  const reported = await eventually('a capacity report with the slug and both quotas', async () => {
    const a = (await getJson(`${apiUrl}/agents`)).find((x: any) => x.id === `agent-${app}`);
    return a?.capacity.memory.committedBytes === 2 * 512 * 1024 * 1024 ? a.capacity : undefined;
  }, 10_000);
  t.same(reported.slugCache.slugs.map((s: any) => s.sha256), [slug.sha256], 'the coordinator sees the cached slug');
  t.ok(reported.slugCache.freeBytes > 0);

  const seen = new Set<string>();
  for (let i = 0; i < 8; i++) {
    const res = await http('GET', `${routerUrl}/`, undefined, { host: `${app}.localhost` });
    t.equal(res.status, 200);
    const m = /^Hello from (web\.\d) \(config var seen\)$/m.exec(res.body);
    t.ok(m, `the response came from a dyno: ${res.body.trim()}`);
    if (m) seen.add(m[1]!);
  }
  t.same([...seen].sort(), ['web.1', 'web.2'], 'requests reached both dynos (their DYNO values differ)');

  // The operator's view through the diagnostics endpoint, with and without the token.
  t.equal((await http('GET', `${diagUrl}/v1/dynos`)).status, 401, 'diagnostics refuse a request without the token');
  const diagDynos = await getJson(`${diagUrl}/v1/dynos`, { authorization: `Bearer ${diagToken}` });
  t.same(diagDynos.map((d: any) => `${d.name}:${d.state}`).sort(), ['web.1:up', 'web.2:up']);
  t.notMatch(JSON.stringify(diagDynos), /config var seen/, 'config vars never appear in diagnostics');
  const pinned = await getJson(`${diagUrl}/v1/slugs`, { authorization: `Bearer ${diagToken}` });
  t.same(pinned.slugs.map((s: any) => [s.sha256, s.inUse]), [[slug.sha256, true]], 'the slug is pinned while dynos run on it');
  t.same(runcContainers('slipway-').filter((c) => c.includes(app)).length, 2, 'two runc containers run');

  // Drain: the agent stops accepting, the coordinator stops placing there, the dynos keep serving.
  const agentApi = `${apiUrl}/agents/agent-${app}`;
  const drained = await http('POST', `${agentApi}/drain`);
  t.equal(drained.status, 200, drained.body);
  t.same(JSON.parse(drained.body), { agent: `agent-${app}`, accepting: false, stopping: 0 });
  const acceptingAtCoordinator = async () => (await getJson(`${apiUrl}/agents`)).find((a: any) => a.id === `agent-${app}`)?.capacity.accepting;
  await eventually('the coordinator to see the host draining', async () => (await acceptingAtCoordinator()) === false || undefined, 10_000);
  const more = await http('PUT', `${apiUrl}/apps/${app}/formation/web`, formation(3));
  t.equal(more.status, 503, `nowhere to place a third dyno while the only host drains: ${more.body}`);
  t.equal((await http('GET', `${routerUrl}/`, undefined, { host: `${app}.localhost` })).status, 200, 'the running dynos still serve');
  const undrained = await http('POST', `${agentApi}/undrain`);
  t.same(JSON.parse(undrained.body), { agent: `agent-${app}`, accepting: true, stopping: 0 });
  await eventually('the coordinator to see the host accepting', async () => (await acceptingAtCoordinator()) === true || undefined, 10_000);
  t.match(await http('POST', `${agentApi}/drain`, { stopDynos: 'yes' }), { status: 422 }, 'a bad drain body is refused');
  t.match(await http('POST', `${apiUrl}/agents/agent-nobody/drain`), { status: 503 }, 'an unknown agent is unreachable');

  t.equal((await http('PUT', `${apiUrl}/apps/${app}/formation/web`, formation(0))).status, 200);
  await eventually('routes to empty', async () => ((await getJson(`${apiUrl}/routes`))[app] ?? []).length === 0, 20_000);
  await eventually('both dynos down', async () => {
    const dynos = (await getJson(`${apiUrl}/dynos`)).filter((d: any) => d.app === app);
    return dynos.every((d: any) => d.state === 'down') || undefined;
  }, 30_000);
  const gone = await http('GET', `${routerUrl}/`, undefined, { host: `${app}.localhost` });
  t.equal(gone.status, 503, 'the router has no dyno left for the app');
  const states = agent.lines.filter((l) => typeof l.msg === 'string' && (l.msg).startsWith('State changed')).map((l) => `${l.source as string}: ${l.msg as string}`);
  t.ok(states.includes('slipway[web.1]: State changed from starting to up'), 'the agent logged the transitions Heroku style');
  t.ok(states.includes('slipway[web.2]: State changed from stopping to down'));

  // Nothing of the test remains, before any teardown safety net runs.
  t.same(runcContainers('slipway-').filter((c) => c.includes(app)), [], 'no container');
  t.same(mountsUnder(dir), [], 'no mount');
  t.same(cgroupChildren(cgroupParent), [], 'no cgroup');
  t.same(dynoNetworksLeft(network.bridge), [], 'no dyno network namespace or veth');
  t.same(processesMentioning(join(stateDir, 'dynos')), [], 'no conmon or dyno process');
});
