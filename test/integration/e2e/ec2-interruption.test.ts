// A spot interruption with real processes: the reference coordinator, two agents (built
// executables) each with its own fake EC2 metadata service on loopback (test/helpers/fake-imds.ts,
// the one mock the design allows), web dynos in runc containers on the busybox stack. Agent A
// runs both dynos of the formation when its metadata service posts a spot notice (2 minutes
// ahead). A user checks: A takes no new dyno; replacements are up on B before A's dynos are
// told to stop (reported `stopping`, which comes before SIGTERM) and the old dynos get SIGTERM,
// not SIGKILL; the coordinator learnt of the notice exactly once, with its deadline, and every
// event of A was acknowledged. After a hard restart of A, it is still draining and the notice is
// not sent again.
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { eventually } from '../../helpers/host.js';
import { spawnBin, type Spawned } from '../../helpers/processes.js';
import { getJson, http } from '../../helpers/http.js';
import { startFakeImds } from '../../helpers/fake-imds.js';
import { assertNothingLeft, e2eHost, killHard, type E2eHost } from './fixtures/e2e-host.js';

const files = { 'public/index.html': 'hello\n' };

t.test('a spot notice on one host: replacements up elsewhere first, then its dynos stopped with grace, nothing lost', async (t) => {
  const imdsA = await startFakeImds(t);
  const imdsB = await startFakeImds(t);
  imdsA.identity = { ...imdsA.identity, instanceId: 'i-0aaaaaaaaaaaaaaa1', instanceType: 'c7g.large', availabilityZone: 'eu-west-1a' };
  imdsB.identity = { ...imdsB.identity, instanceId: 'i-0bbbbbbbbbbbbbbb2', availabilityZone: 'eu-west-1c', privateIp: '10.0.4.9' };
  const ec2 = (url: string) => ({ ec2: { enabled: true, endpoint: url, pollMs: 200 } });
  const hostA = await e2eHost(t, 'spota', files, ec2(imdsA.url));
  const hostB = await e2eHost(t, 'spotb', files, ec2(imdsB.url));
  const { app, slug } = hostA;

  const coordinator = spawnBin('coordinator', ['serve', '--listen', '127.0.0.1:0', '--router-listen', '127.0.0.1:0'], { SLIPWAY_COORDINATOR_TOKEN: hostA.token });
  hostA.procs.push(coordinator);
  const listening = await coordinator.waitFor('coordinator listening');
  const apiUrl = listening.apiUrl as string;
  const tokenFile = hostA.tokenFile;
  // No --agent-id: the agent id is the instance id. The address stays loopback (the dynos'
  // readiness probe must reach them here; the fake's private IP is no address of this host).
  const startAgent = async (host: E2eHost, ports: string) => {
    const agent = spawnBin('agent', [
      'serve', '--config', host.configFile, '--coordinator', listening.agentUrl as string, '--token-file', tokenFile, '--state-dir', host.stateDir,
      '--address', '127.0.0.1', '--cgroup-parent', host.cgroupParent, '--diagnostics-listen', '127.0.0.1:0',
      '--port-range', ports, '--reserved-memory-mb', '512', '--stop-grace-ms', '2000',
    ]);
    host.procs.push(agent);
    const started = await agent.waitFor('agent started', 30_000);
    const diagToken = (await readFile(join(host.stateDir, 'agent', 'diagnostics.token'), 'utf8')).trim();
    const get = async (path: string): Promise<any> => getJson(`${started.diagnosticsUrl as string}${path}`, { authorization: `Bearer ${diagToken}` });
    return { agent, get };
  };
  const idA = imdsA.identity.instanceId;
  const idB = imdsB.identity.instanceId;
  const agentView = async (id: string): Promise<any> => (await getJson(`${apiUrl}/agents`)).find((a: any) => a.id === id);

  let a = await startAgent(hostA, '33000-33499');
  const viewA = await eventually('agent A to connect under its instance id', async () => (await agentView(idA))?.connected ? agentView(idA) : undefined);
  t.same(viewA.ec2, imdsA.identity, 'the hello carries instance id, type, zone, region and private IP');
  t.equal(imdsA.counts.withoutToken, 0, 'the agent never sent an IMDSv1 request');

  // The dyno says when it gets SIGTERM (its own log), and serves $PORT meanwhile.
  const command = "trap 'echo got SIGTERM; exit 0' TERM; httpd -p $PORT -h /app/public; while :; do sleep 0.2; done";
  const formation = (quantity: number) => http('PUT', `${apiUrl}/apps/${app}/formation/web`, { quantity, size: 'standard-1x', command, slug: { url: hostA.slugUrl, sha256: slug.sha256 } });
  t.equal((await formation(2)).status, 200);
  const onA = await eventually('two dynos up on A', async () => {
    const d = await a.get('/v1/dynos');
    return d.length === 2 && d.every((x: any) => x.state === 'up') ? d : undefined;
  }, 60_000);
  const oldIds = new Set<string>(onA.map((d: any) => d.id as string));

  const b = await startAgent(hostB, '33500-33999');
  await eventually('agent B to connect', async () => (await agentView(idB))?.connected || undefined);

  const deadline = new Date(Date.now() + 120_000);
  imdsA.spotNotice('terminate', deadline);
  const moved = await eventually('both dynos to run on B and none on A', async () => {
    const all = (await getJson(`${apiUrl}/dynos`)).filter((d: any) => d.app === app);
    const aLeft = await a.get('/v1/dynos');
    return all.length === 2 && all.every((d: any) => d.agentId === idB && d.state === 'up') && aLeft.length === 0 ? all : undefined;
  }, 60_000);
  t.equal(moved.length, 2, 'the formation runs whole on B');
  t.same(new Set(moved.map((d: any) => d.name)), new Set(['web.1', 'web.2']), 'the same dyno names');

  // Order: every replacement reported `up` before the first old dyno was reported `stopping`
  // (an agent reports stopping before it sends SIGTERM).
  const timeOf = (p: Spawned, dynoId: string, msg: string) => {
    const line = p.lines.find((l) => l.dynoId === dynoId && l.msg === msg);
    return line ? Date.parse(line.time as string) : NaN;
  };
  const upOnB = moved.map((d: any) => timeOf(b.agent, d.id, 'State changed from starting to up'));
  const stoppingOnA = [...oldIds].map((id) => timeOf(a.agent, id, 'State changed from up to stopping'));
  t.ok(upOnB.every(Number.isFinite) && stoppingOnA.every(Number.isFinite), 'both agents logged the transitions');
  t.ok(Math.max(...upOnB) < Math.min(...stoppingOnA), `replacements up (${Math.max(...upOnB) - Math.min(...stoppingOnA)} ms before) the first old dyno stopping`);
  // The agent ships log lines in batches (every second): the old dynos' last lines follow.
  const appLog = await eventually("the old dynos' last lines", async () => {
    const text = (await http('GET', `${apiUrl}/apps/${app}/logs?lines=1500`)).body;
    return [...text.matchAll(/slipway\[web\.\d\]: State changed from stopping to down/g)].length === 2 ? text : undefined;
  }, 10_000).catch(async (err: unknown) => {
    console.error((await http('GET', `${apiUrl}/apps/${app}/logs?lines=1500`)).body);
    throw err;
  });
  t.equal([...appLog.matchAll(/app\[web\.\d\]: got SIGTERM$/gm)].length, 2, "each old dyno's own log shows it got SIGTERM");
  for (const id of oldIds) {
    const down = a.agent.lines.find((l) => l.dynoId === id && typeof l.msg === 'string' && l.msg.startsWith('State changed from stopping to down'));
    t.ok(down, `old dyno ${id} reported down`);
  }
  t.notMatch(appLog, /R12/, 'no old dyno ran out of grace (SIGKILL)');

  // A takes nothing new: a scale-up lands on B.
  const status = await a.get('/v1/status');
  t.equal(status.capacity.accepting, false, 'A reports it accepts no dynos');
  t.match(status.capacity.notices, [{ notice: 'spot_interruption', action: 'terminate', deadline: deadline.toISOString().replace(/\.\d{3}Z$/, 'Z') }]);
  t.equal((await formation(3)).status, 200);
  const three = await eventually('three dynos up', async () => {
    const all = (await getJson(`${apiUrl}/dynos`)).filter((d: any) => d.app === app);
    return all.length === 3 && all.every((d: any) => d.state === 'up') ? all : undefined;
  }, 60_000);
  t.ok(three.every((d: any) => d.agentId === idB), 'the new dyno went to B');
  t.same(await a.get('/v1/dynos'), [], 'A runs none');

  // Nothing lost: the coordinator logged the notice once (not once per 200 ms poll), with its
  // deadline, and acknowledged every event of A.
  const notices = () => coordinator.lines.filter((l) => l.msg === 'host notice' && l.agentId === idA);
  t.equal(notices().length, 1, 'one host_notice event for one notice');
  t.equal(notices()[0]!.deadline, deadline.toISOString().replace(/\.\d{3}Z$/, 'Z'));
  await eventually("every event of A acknowledged", async () => ((await a.get('/v1/status')).link.unackedEvents === 0) || undefined, 10_000);
  t.match((await agentView(idA)).notices, [{ notice: 'spot_interruption' }], 'GET /agents shows the notice');

  // A dies hard and comes back within the 2 minutes: still draining, the notice not repeated.
  await killHard(hostA, a.agent);
  a = await startAgent(hostA, '33000-33499');
  await eventually('agent A back', async () => (await agentView(idA))?.connected || undefined);
  const again = await eventually('A draining again', async () => {
    const s = await a.get('/v1/status');
    return s.capacity.accepting === false ? s : undefined;
  }, 10_000);
  t.match(again.capacity.notices, [{ notice: 'spot_interruption' }]);
  await new Promise((r) => setTimeout(r, 1000));
  t.equal(notices().length, 1, 'no second host_notice after the restart');

  t.equal((await formation(0)).status, 200);
  await eventually('all down on B', async () => ((await b.get('/v1/dynos')).length === 0) || undefined, 60_000);
  assertNothingLeft(t, hostA);
  assertNothingLeft(t, hostB);
  t.equal(imdsA.counts.withoutToken + imdsB.counts.withoutToken, 0, 'no IMDSv1 request in the whole run');
});
