// Several coordinators over one real PostgreSQL (a private cluster: test/helpers/postgres.ts),
// as processes (dist/coordinator/main.js): one leads, the others follow and refuse agents and
// the API with COORDINATOR_NOT_LEADER; a killed leader is replaced within the lock session's
// timeout and its state, with each agent's event ledger, carries over; a stopped leader is
// fenced: once it resumes it neither writes nor acknowledges anything. The agent is scripted
// (test/helpers/scripted-agent.ts) so that the test controls every event and reads every ack.
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { API_AUTH, http } from '../../helpers/http.js';
import { spawnBin, type Spawned } from '../../helpers/processes.js';
import { testDatabase, withClient } from '../../helpers/postgres.js';
import { connectScriptedAgent, type ScriptedAgent } from '../../helpers/scripted-agent.js';

const TOKEN = 'leadership-test-token';
// Short, so that a takeover is quick: a stopped leader's session ends after 2 s.
const SESSION_MS = 2_000;

interface Coordinator { id: string; proc: Spawned; apiUrl: string; agentUrl: string; routerUrl: string }

async function startCoordinator(t: Test, dbFile: string, id: string): Promise<Coordinator> {
  const proc = spawnBin('coordinator', [
    'serve', '--listen', '127.0.0.1:0', '--router-listen', '127.0.0.1:0', '--coordinator-id', id,
    '--database-url-file', dbFile, '--leader-session-timeout-ms', String(SESSION_MS), '--leader-retry-ms', '200',
  ], { SLIPWAY_COORDINATOR_TOKEN: TOKEN, SLIPWAY_LOG_LEVEL: 'info' });
  t.teardown(async () => {
    proc.child.kill('SIGCONT');
    await proc.stop(5_000);
  });
  const listening = await proc.waitFor('coordinator listening');
  return { id, proc, apiUrl: listening.apiUrl as string, agentUrl: listening.agentUrl as string, routerUrl: listening.routerUrl as string };
}

/** A request to a coordinator's API, with the API token (spawnBin gives the coordinators it). */
async function json(url: string, init?: RequestInit): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { ...init, headers: { ...API_AUTH, ...(init?.headers as Record<string, string> | undefined) }, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const leaderOf = (cs: Coordinator[]): Promise<Coordinator> => until('a leader', 15_000, async () => {
  for (const c of cs) {
    const r = await json(`${c.apiUrl}/v1/leader`);
    if (r.status === 200 && r.body?.role === 'leader') return c;
  }
  return undefined;
});

async function setup(t: Test): Promise<{ dbUrl: string; dbFile: string }> {
  const dbUrl = await testDatabase(t);
  const dir = await mkdtemp(join(tmpdir(), 'slipway-leadership-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const dbFile = join(dir, 'database-url');
  writeFileSync(dbFile, `${dbUrl}\n`, { mode: 0o600 });
  return { dbUrl, dbFile };
}

function agentOn(t: Test, c: Coordinator, over: Partial<Parameters<typeof connectScriptedAgent>[0]> = {}): Promise<ScriptedAgent> {
  return connectScriptedAgent({ url: c.agentUrl, token: TOKEN, ...over }).then((a) => {
    t.teardown(() => a.close());
    return a;
  });
}

const formation = (quantity: number) => ({ quantity, size: 'standard-1x', command: 'bin/web', slug: { url: 'http://127.0.0.1:1/slug.tgz', sha256: 'a'.repeat(64) } });
const put = (c: Coordinator, quantity: number) => json(`${c.apiUrl}/apps/shop/formation/web`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(formation(quantity)) });

t.test('one leader; followers refuse agents and the API; a killed leader is replaced and its state and event ledger carry over', async (t) => {
  const { dbFile } = await setup(t);
  const a = await startCoordinator(t, dbFile, 'coord-a');
  const b = await startCoordinator(t, dbFile, 'coord-b');
  const leader = await leaderOf([a, b]);
  const follower = leader === a ? b : a;
  t.match(await json(`${follower.apiUrl}/v1/leader`), { status: 503, body: { error: { code: 'COORDINATOR_NOT_LEADER' } } }, 'GET /v1/leader: 503 on the follower (what a load balancer health-checks)');
  t.match(await json(`${leader.apiUrl}/v1/leader`), { status: 200, body: { role: 'leader', coordinatorId: leader.id } }, 'and 200 on the leader, naming it');
  t.match(await json(`${follower.apiUrl}/healthz`), { status: 200, body: { leadership: { role: 'follower', coordinatorId: follower.id } } }, 'the follower is healthy and says it follows');
  const refused = await json(`${follower.apiUrl}/apps/shop/formation/web`);
  t.match(refused, { status: 503, body: { error: { code: 'COORDINATOR_NOT_LEADER' } } }, 'the follower refuses the API');
  await t.rejects(connectScriptedAgent({ url: follower.agentUrl, token: TOKEN }, 3_000), 'the follower refuses the agent\'s upgrade');

  // The dynos' endpoint: one real HTTP server stands for both.
  const web = createServer((_req, res) => res.end('hello from shop\n'));
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { web.closeAllConnections(); web.close(() => r()); }));
  const agent = await agentOn(t, leader, { endpoint: { host: '127.0.0.1', port: (web.address() as AddressInfo).port } });
  const epoch1 = agent.welcome.epoch!;
  t.ok(epoch1 >= 1, `the leader's welcome carries its epoch (${epoch1})`);
  t.equal((await put(leader, 2)).status, 200, 'a formation of two');
  const started = agent.received.filter((m) => m.type === 'start_dyno').map((m) => m.type === 'start_dyno' ? m.dyno.id : '');
  t.equal(started.length, 2, 'two dynos placed');
  // The follower's router serves the routes the leader stored (refreshed every 2 s).
  const viaFollower = await until('the follower\'s router to route shop', 10_000, async () => {
    const res = await http('GET', follower.routerUrl, undefined, { host: 'shop.localhost' });
    return res.status === 200 ? { dyno: String(res.headers['x-slipway-dyno']), body: res.body } : undefined;
  });
  t.equal(viaFollower.body, 'hello from shop\n', 'the follower\'s router reaches the app');
  t.match(viaFollower.dyno, /^web\.[12]$/, `through one of the placed dynos (${viaFollower.dyno})`);
  // Events 1..3 on the leader: each acknowledged only once stored.
  const d1 = agent.dynos.get(started[0]!)!;
  agent.sendState(1, { ...d1, state: 'up' }, 'starting');
  agent.sendState(2, { ...d1, memoryMb: d1.memoryMb }, 'up');
  agent.sendState(3, { ...d1 }, 'up');
  await agent.waitAck(3);

  leader.proc.child.kill('SIGKILL');
  const killedAt = Date.now();
  const next = await leaderOf([follower]);
  const takeoverMs = Date.now() - killedAt;
  t.ok(takeoverMs < SESSION_MS + 5_000, `the follower leads ${takeoverMs} ms after the kill`);
  const again = await agentOn(t, next, { dynos: [...agent.dynos.values()] });
  t.ok(again.welcome.epoch! > epoch1, `the new leader's epoch ${again.welcome.epoch} is higher`);
  t.equal(again.welcome.ackSeq, 3, 'the new leader holds every event the old one acknowledged (ackSeq 3)');
  t.same((again.welcome.desired ?? []).map((d) => d.id).sort(), [...started].sort(), 'the desired set is the same two dynos');
  await new Promise((r) => setTimeout(r, 500));
  t.equal(again.received.filter((m) => m.type === 'start_dyno').length, 0, 'no dyno placed again');
  t.match(await json(`${next.apiUrl}/apps/shop/formation`), { status: 200, body: [{ type: 'web', quantity: 2 }] }, 'the formation carried over');
  // A resent event the old leader acknowledged is not applied twice; a new one is.
  again.sendState(3, { ...d1 }, 'up');
  again.sendState(4, { ...d1 }, 'up');
  await again.waitAck(4);
  t.pass('the resent event and the next one are acknowledged in order');
});

t.test('a stopped leader is fenced: once resumed it writes nothing, acknowledges nothing, and follows', async (t) => {
  const { dbUrl, dbFile } = await setup(t);
  const a = await startCoordinator(t, dbFile, 'coord-a');
  const leader = await leaderOf([a]);
  const b = await startCoordinator(t, dbFile, 'coord-b');
  const agent = await agentOn(t, leader);
  t.equal((await put(leader, 1)).status, 200, 'a formation of one');
  const dynoId = agent.received.find((m) => m.type === 'start_dyno')?.type === 'start_dyno' ? (agent.received.find((m) => m.type === 'start_dyno') as { dyno: { id: string } }).dyno.id : '';
  const d = agent.dynos.get(dynoId)!;
  agent.sendState(1, d, 'starting');
  await agent.waitAck(1);

  leader.proc.child.kill('SIGSTOP');
  // While it is stopped: an event reaches its socket (the kernel buffers it), and the
  // follower takes over once the stopped leader's lock session idles out.
  agent.sendState(2, { ...d, state: 'crashed', exit: { code: 1, signal: null } }, 'up');
  const next = await leaderOf([b]);
  const standIn = await agentOn(t, next, { id: 'host-b' });
  t.equal((await put(next, 3)).status, 200, 'the new leader scales to three');
  const epochs = await withClient(dbUrl, (c) => c.query<{ epoch: string; coordinator_id: string }>('SELECT epoch, coordinator_id FROM coordinator_epoch'));
  t.equal(epochs.rows[0]!.coordinator_id, 'coord-b', 'the store names the new leader');

  leader.proc.child.kill('SIGCONT');
  await until('the old leader to follow', 15_000, async () => ((await json(`${leader.apiUrl}/healthz`)).body?.leadership?.role === 'follower' ? true : undefined));
  t.pass('the resumed leader steps down');
  await new Promise((r) => setTimeout(r, 1_000));
  t.equal(agent.acked(), 1, 'the event sent to the stopped leader was never acknowledged (the agent keeps it)');
  const stored = await withClient(dbUrl, (c) => c.query<{ state: string }>('SELECT state FROM dynos WHERE id = $1', [dynoId]));
  t.not(stored.rows[0]?.state, 'crashed', 'nor written: the store has not heard of the crash');
  const formation = await withClient(dbUrl, (c) => c.query<{ quantity: number }>("SELECT quantity FROM formations WHERE app = 'shop' AND type = 'web'"));
  t.equal(formation.rows[0]?.quantity, 3, 'the new leader\'s formation stands');
  t.ok(standIn.received.filter((m) => m.type === 'start_dyno').length >= 1, 'the new leader placed the new dynos');
  const closeCode = await Promise.race([agent.closed, new Promise<number>((r) => setTimeout(() => r(-1), 5_000))]);
  t.not(closeCode, -1, `the old leader closed its agent link (${closeCode})`);
});
