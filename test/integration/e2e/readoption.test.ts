// Re-adoption with real processes: the reference coordinator, the agent (built executables),
// 10 web dynos in runc containers. The agent is SIGKILLed; while it is down one dyno's
// process is killed too. The restarted agent must take over the 9 running dynos as they are
// (same container ids and pids) within 10 s, with no duplicate container, their logs going on,
// and report the killed one crashed and restart it.
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { eventually, runcContainers } from '../../helpers/host.js';
import { spawnBin } from '../../helpers/processes.js';
import { getJson, http } from '../../helpers/http.js';
import { assertNothingLeft, e2eHost, killHard } from './fixtures/e2e-host.js';
import { dynoNetworksLeft } from '../../helpers/network.js';

const COUNT = 10;

t.test('SIGKILL of the agent with 10 dynos: all re-adopted, none duplicated, a dyno killed meanwhile restarted', async (t) => {
  const host = await e2eHost(t, 'readopt', { 'public/index.html': 'hello\n' });
  const { stateDir, app, cgroupParent, token, tokenFile, slug, procs } = host;

  const coordinator = spawnBin('coordinator', ['serve', '--listen', '127.0.0.1:0', '--router-listen', '127.0.0.1:0'], { SLIPWAY_COORDINATOR_TOKEN: token });
  procs.push(coordinator);
  const listening = await coordinator.waitFor('coordinator listening');
  const apiUrl = listening.apiUrl as string;
  const agentId = `agent-${app}`;
  const agentArgs = [
    'serve', '--config', host.configFile, '--coordinator', listening.agentUrl as string, '--token-file', tokenFile, '--state-dir', stateDir,
    '--address', '127.0.0.1', '--cgroup-parent', cgroupParent, '--diagnostics-listen', '127.0.0.1:0',
    '--port-range', '33000-33999', '--reserved-memory-mb', '512', '--stop-grace-ms', '2000', '--agent-id', agentId,
  ];
  const startAgent = async () => {
    const agent = spawnBin('agent', agentArgs);
    procs.push(agent);
    const started = await agent.waitFor('agent started', 30_000);
    const diagToken = (await readFile(join(stateDir, 'agent', 'diagnostics.token'), 'utf8')).trim();
    const dynos = async (): Promise<any[]> => getJson(`${started.diagnosticsUrl as string}/v1/dynos`, { authorization: `Bearer ${diagToken}` });
    const logs = async (id: string): Promise<string> => (await http('GET', `${started.diagnosticsUrl as string}/v1/dynos/${id}/logs?lines=500`, undefined, { authorization: `Bearer ${diagToken}` })).body;
    return { agent, dynos, logs };
  };

  let first = await startAgent();
  await eventually('the agent to connect', async () => (await getJson(`${apiUrl}/agents`)).find((a: any) => a.id === agentId && a.connected));
  // httpd daemonizes; the shell then prints a line every 200 ms: the log must go on across the restart.
  const command = 'httpd -p $PORT -h /app/public; i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.2; done';
  const put = await http('PUT', `${apiUrl}/apps/${app}/formation/web`, { quantity: COUNT, size: 'standard-1x', command, slug: { url: host.slugUrl, sha256: slug.sha256 } });
  t.equal(put.status, 200, put.body);
  const before = await eventually(`${COUNT} dynos up`, async () => {
    const d = await first.dynos();
    return d.length === COUNT && d.every((x) => x.state === 'up' && x.pid > 0) ? d : undefined;
  }, 90_000);
  const byId = new Map(before.map((d) => [d.id as string, d]));
  t.equal(new Set(before.map((d) => d.containerId)).size, COUNT, 'ten containers');
  t.equal(new Set(before.map((d) => d.network?.address)).size, COUNT, 'diagnostics show each dyno its own address');

  // The dyno numbers its lines: the highest number seen is how far its log got.
  const lastTick = (text: string) => Math.max(0, ...[...text.matchAll(/tick (\d+)/g)].map((m) => Number(m[1])));
  const ticksBefore = lastTick(await first.logs(before[0]!.id));
  // Each dyno's network, as its record keeps it (the namespace, the address, the host veth).
  const networkOf = async (id: string): Promise<{ netns: string; address: string; hostVeth: string }> =>
    (JSON.parse(await readFile(join(stateDir, 'agent', 'dynos', `${id}.json`), 'utf8')) as { record: { network: { netns: string; address: string; hostVeth: string } } }).record.network;
  const networksBefore = new Map(await Promise.all(before.map(async (d) => [d.id as string, await networkOf(d.id as string)] as const)));
  // The agent dies hard; its dynos do not notice.
  await killHard(host, first.agent);
  t.equal(runcContainers('slipway-').filter((c) => c.includes(app)).length, COUNT, 'all ten still run without the agent');
  const victim = before[3]!;
  process.kill(victim.pid as number, 'SIGKILL');

  const t0 = Date.now();
  const second = await startAgent();
  const after = await eventually('every dyno re-adopted', async () => {
    const d = await second.dynos();
    return d.length === COUNT ? d : undefined;
  }, 10_000);
  const readoptMs = Date.now() - t0;
  t.ok(readoptMs < 10_000, `re-adopted within ${readoptMs} ms of the agent's start (bound 10 s)`);
  for (const d of after.filter((x) => x.id !== victim.id)) {
    const was = byId.get(d.id)!;
    t.same({ id: d.id, state: d.state, containerId: d.containerId, pid: d.pid }, { id: d.id, state: 'up', containerId: was.containerId, pid: was.pid }, `${d.name} kept its container and process`);
  }
  const restarted = await eventually('the killed dyno restarted and up', async () => {
    const d = (await second.dynos()).find((x) => x.id === victim.id);
    return d?.state === 'up' && d.pid !== victim.pid ? d : undefined;
  }, 30_000);
  t.not(restarted.pid, victim.pid, 'the killed dyno runs again in a new process');
  for (const d of after.filter((x) => x.id !== victim.id)) {
    t.same(await networkOf(d.id), networksBefore.get(d.id), `${d.name} kept its network namespace and address`);
  }
  const victimNet = await networkOf(victim.id);
  t.not(victimNet.netns, networksBefore.get(victim.id)!.netns, 'the restarted dyno has a new namespace');
  t.notOk(dynoNetworksLeft(host.network.bridge).includes(`netns ${networksBefore.get(victim.id)!.netns}`), 'and its old one is gone');
  const victimLines = second.agent.lines.filter((l) => l.dynoId === victim.id).map((l) => l.msg);
  t.ok(victimLines.includes('State changed from up to crashed'), 'the dyno that died while the agent was down is reported crashed');
  t.ok(victimLines.indexOf('State changed from crashed to starting') > victimLines.indexOf('State changed from up to crashed'), 'and then restarted');
  t.equal(second.agent.lines.filter((l) => l.msg === 'Re-adopted as up').length, COUNT, 'each dyno reported once on re-adoption');
  const coordView = await eventually('the coordinator to see the crash and the restart', async () => {
    const all = (await getJson(`${apiUrl}/dynos`)).filter((d: any) => d.app === app);
    return all.length === COUNT && all.every((d: any) => d.state === 'up') ? all : undefined;
  }, 30_000);
  t.equal(coordView.length, COUNT, 'the coordinator sees ten dynos up, no more');
  t.equal(runcContainers('slipway-').filter((c) => c.includes(app)).length, COUNT, 'ten containers: no duplicate');

  await eventually('the log of a re-adopted dyno to go on', async () => {
    return lastTick(await second.logs(before[0]!.id)) > ticksBefore + 5 || undefined;
  }, 10_000);
  t.pass('lines written after the restart are captured');
  // The same lines reach the coordinator (shipped in batches over the link), Heroku style.
  const name = before[0]!.name as string;
  const shipped = await eventually('the coordinator to have the log lines of a re-adopted dyno', async () => {
    const text = (await http('GET', `${apiUrl}/apps/${app}/logs?lines=1500`)).body;
    const ticks = [...text.matchAll(new RegExp(`app\\[${name.replace('.', '\\.')}\\]: tick (\\d+)`, 'g'))].map((m) => Number(m[1]));
    return ticks.some((n) => n > ticksBefore) ? text : undefined;
  }, 15_000);
  t.match(shipped, /^\S+ slipway\[web\.\d+\]: State changed from starting to up$/m, 'the agent\'s own lines about the dynos are there too');
  t.match(shipped, new RegExp(`^\\S+ slipway\\[${victim.name.replace('.', '\\.')}\\]: State changed from up to crashed$`, 'm'), 'and the crash of the dyno killed while the agent was down');

  t.equal((await http('PUT', `${apiUrl}/apps/${app}/formation/web`, { quantity: 0, size: 'standard-1x', command, slug: { url: host.slugUrl, sha256: slug.sha256 } })).status, 200);
  await eventually('all down', async () => ((await second.dynos()).length === 0) || undefined, 60_000);
  assertNothingLeft(t, host);
  first = second;
});
