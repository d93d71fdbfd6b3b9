// Several coordinators and one real agent, all real processes: two coordinators (built
// executables) over one PostgreSQL database, the agent with both their URLs in its config file
// (the follower first, so that its first dial is refused and the rotation moves on), and a
// formation of two web dynos in runc containers from a real slug.
//  1. The leader is SIGKILLed while a dyno crashes: the follower takes over and the agent is
//     welcomed by it within a bound worked out from the lock, the campaign and the agent's
//     redial rounds; the new leader knows the same two dynos up and places none (the agent runs
//     the same two containers and was sent no start_dyno).
//  2. The killed coordinator comes back on its address as a follower. The leader is SIGSTOPped
//     for longer than its lock session's timeout while the other dyno crashes, and a scale-down
//     reaches its socket meanwhile: the follower takes over; once resumed, the old leader finds
//     itself deposed, writes and commands nothing (the scale-down is refused, no stop_dyno), and
//     follows; the agent moves to the new leader and stays there, the dyno set unchanged.
// Throughout, no event is lost or applied twice: every event the agent journaled is
// acknowledged in the end, and the events the coordinators applied for good ('dyno state' in
// their debug logs, up to what the next leader's welcome acknowledged) are seq 1..N, each once.
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { RECONNECT_INITIAL_MS, RECONNECT_MULTIPLIER } from '../../../agent/link/backoff.js';
import { eventually, runcContainers } from '../../helpers/host.js';
import { getJson, http, TEST_API_TOKEN } from '../../helpers/http.js';
import { testDatabase, withClient } from '../../helpers/postgres.js';
import { spawnBin, type Spawned } from '../../helpers/processes.js';
import { addToAgentConfig, assertNothingLeft, e2eHost, killHard } from './fixtures/e2e-host.js';

// Short, so that a takeover is quick (the default is 5 s): a stopped leader's lock session
// ends after 2 s; a follower tries the lock every 200 ms.
const SESSION_MS = 2_000;
const RETRY_MS = 200;
// What a takeover costs once the lock is free: claim the epoch, load the store, start the
// term (tens of ms alone; allowed 1.5 s on this 2-core host with runc dynos and PostgreSQL).
const ELECTION_MS = 1_500;
// One dial on loopback: connect, upgrade (or its 503), hello, welcome. Allowed 1 s.
const DIAL_MS = 1_000;
// A resumed leader learns at its first turn that its lock session is gone (PostgreSQL's FATAL
// waits in its socket, and its heartbeat fails) and ends its term. Allowed 1 s.
const DEPOSE_MS = 1_000;

/** The latest the agent is welcomed, counted from its link's drop, by a leader that serves
 * from `servesByMs`. After the drop the agent waits RECONNECT_INITIAL_MS (the spread hint of a
 * one-agent fleet is 10 ms, under the backoff's floor: agent/link/backoff.ts startFrom), then
 * dials its URLs in turn (agent/link/url-rotation.ts): the dead or following ones fail at once,
 * and after each failed round it waits at most RECONNECT_INITIAL_MS * 1.5^n. It is welcomed in
 * the first round that starts once the leader serves. */
function welcomedByMs(servesByMs: number): number {
  let at = RECONNECT_INITIAL_MS;
  for (let n = 1; at < servesByMs; n++) at += RECONNECT_INITIAL_MS * RECONNECT_MULTIPLIER ** n;
  return Math.round(at + DIAL_MS);
}

interface Applied { seq: number; dynoId: string; state: string }

/** The events a coordinator process applied, from its debug log, in the order it applied them. */
function applied(c: Spawned, agentId: string): Applied[] {
  return c.lines.filter((l) => l.msg === 'dyno state' && l.agentId === agentId).map((l) => ({ seq: l.seq as number, dynoId: l.dynoId as string, state: l.state as string }));
}

/** The agent's journal (events.jsonl: a header {"seq":N} with the last number handed out when
 * it was written, {"e":…} events, {"a":N} acks): what is unacknowledged, and the last seq. */
function journal(file: string): { pending: number[]; lastSeq: number } {
  let acked = 0;
  let lastSeq = 0;
  const seqs: number[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    try {
      const row = JSON.parse(line) as { e?: { seq: number }; a?: number; v?: number; seq?: number };
      if (row.e) seqs.push(row.e.seq);
      else if (typeof row.a === 'number') acked = Math.max(acked, row.a);
      else if (row.v !== undefined && typeof row.seq === 'number') lastSeq = Math.max(lastSeq, row.seq);
    } catch { /* a torn last line */ }
  }
  return { pending: seqs.filter((s) => s > acked), lastSeq: Math.max(lastSeq, ...seqs) };
}

/** A TCP connection to `apiUrl`, once connected (the server has accepted it). */
function openConnection(t: { teardown(fn: () => unknown): void }, apiUrl: string): Promise<Socket> {
  const { hostname, port } = new URL(apiUrl);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => resolve(socket));
    socket.once('error', reject);
    t.teardown(() => socket.destroy());
  });
}

/** Writes one HTTP/1.1 request to the coordinator's API (with the API token, so that a refusal
 * is the coordinator's, not the token check's) with a JSON body on `socket`; resolves with
 * the response's status and body once the server closes (Connection: close), at most after
 * `timeoutMs`. */
function requestOn(socket: Socket, method: string, path: string, body: unknown, timeoutMs = 20_000): Promise<{ status: number; body: string }> {
  const json = JSON.stringify(body);
  return new Promise((resolve) => {
    let data = '';
    const done = () => {
      clearTimeout(timer);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0);
      resolve({ status, body: data.slice(data.indexOf('\r\n\r\n') + 4) });
    };
    const timer = setTimeout(() => { socket.destroy(); }, timeoutMs);
    socket.on('data', (b: Buffer) => { data += b.toString('utf8'); });
    socket.once('close', done);
    socket.write(`${method} ${path} HTTP/1.1\r\nhost: coordinator\r\nauthorization: Bearer ${TEST_API_TOKEN}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(json)}\r\nconnection: close\r\n\r\n${json}`);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const at = (line: Record<string, unknown>): number => Date.parse(line.time as string);

t.test('leader killed, then leader stopped: the agent follows the leadership, no dyno placed twice, no event lost', async (t) => {
  // The database first: its teardown (DROP ... WITH (FORCE)) then runs last, after every process stopped.
  const dbUrl = await testDatabase(t);
  const host = await e2eHost(t, 'failover', { 'public/index.html': 'hello\n' }, { restarts: { baseMs: 200, capMs: 400, stableAfterMs: 600_000, jitter: 0 } });
  const { stateDir, app, cgroupParent, token, tokenFile, slug, procs } = host;
  const dbFile = join(host.dir, 'database-url');
  await writeFile(dbFile, `${dbUrl}\n`, { mode: 0o600 });

  interface Coordinator { id: string; proc: Spawned; apiUrl: string; agentUrl: string; listen: string }
  const coordinators: Coordinator[] = [];
  // Registered after the fixture's, so it runs before it: a stopped coordinator ignores the
  // SIGTERM the fixture's teardown sends until it is continued.
  t.teardown(() => { for (const c of coordinators) c.proc.child.kill('SIGCONT'); });
  const startCoordinator = async (id: string, listen = '127.0.0.1:0'): Promise<Coordinator> => {
    const proc = spawnBin('coordinator', [
      'serve', '--listen', listen, '--router-listen', '127.0.0.1:0', '--coordinator-id', id, '--database-url-file', dbFile,
      '--leader-session-timeout-ms', String(SESSION_MS), '--leader-retry-ms', String(RETRY_MS),
    ], { SLIPWAY_COORDINATOR_TOKEN: token, SLIPWAY_LOG_LEVEL: 'debug' });
    procs.push(proc);
    const listening = await proc.waitFor('coordinator listening');
    const c = { id, proc, apiUrl: listening.apiUrl as string, agentUrl: listening.agentUrl as string, listen: new URL(listening.apiUrl as string).host };
    coordinators.push(c);
    return c;
  };
  const role = async (c: Coordinator): Promise<string | undefined> => (await getJson(`${c.apiUrl}/healthz`)).leadership?.role;
  const appDynos = async (c: Coordinator): Promise<{ id: string; state: string }[]> => (await getJson(`${c.apiUrl}/dynos`)).filter((d: any) => d.app === app);

  // The first coordinator campaigns before it listens: it leads. The second follows.
  const a = await startCoordinator('coord-a');
  t.equal(await role(a), 'leader', 'the first coordinator leads');
  const b = await startCoordinator('coord-b');
  t.equal(await role(b), 'follower', 'the second follows');

  const agentId = `agent-${app}`;
  await addToAgentConfig(host, { coordinatorUrls: [b.agentUrl, a.agentUrl] });
  const agent = spawnBin('agent', [
    'serve', '--config', host.configFile, '--token-file', tokenFile, '--state-dir', stateDir,
    '--address', '127.0.0.1', '--cgroup-parent', cgroupParent, '--diagnostics-listen', '127.0.0.1:0',
    '--port-range', '36000-36099', '--reserved-memory-mb', '512', '--stop-grace-ms', '1000', '--agent-id', agentId,
  ]);
  procs.push(agent);
  const started = await agent.waitFor('agent started', 30_000);
  const diagToken = (await readFile(join(stateDir, 'agent', 'diagnostics.token'), 'utf8')).trim();
  const agentDynos = async (): Promise<any[]> => getJson(`${started.diagnosticsUrl as string}/v1/dynos`, { authorization: `Bearer ${diagToken}` });
  const linkReady = (c: Coordinator, after = 0) => agent.lines.find((l) => l.msg === 'coordinator link ready' && l.url === c.agentUrl && at(l) >= after);
  const first = await eventually('the agent welcomed by the leader', () => linkReady(a), 30_000);
  const refusedFirst = agent.lines.find((l) => l.msg === 'no welcome from this coordinator; dialling the next coordinator URL');
  t.match(refusedFirst, { url: b.agentUrl, next: a.agentUrl, lastError: /HTTP 503 COORDINATOR_NOT_LEADER/ }, 'the agent dialled the follower first, was refused, and moved on to the leader');

  const command = 'httpd -p $PORT -h /app/public; while :; do sleep 1; done';
  const formation = { size: 'standard-1x', command, slug: { url: host.slugUrl, sha256: slug.sha256 } };
  const put = await http('PUT', `${a.apiUrl}/apps/${app}/formation/web`, { quantity: 2, ...formation });
  t.equal(put.status, 200, 'a formation of two web dynos, through the leader');
  const upOn = (c: Coordinator, ids?: string[]) => eventually(`two dynos up on ${c.id}`, async () => {
    const d = await appDynos(c);
    const same = ids === undefined || JSON.stringify(d.map((x) => x.id).sort()) === JSON.stringify(ids);
    return d.length === 2 && same && d.every((x) => x.state === 'up') ? d.map((x) => x.id).sort() : undefined;
  }, 60_000);
  const ids = await upOn(a);
  const running = () => runcContainers('slipway-').filter((c) => c.includes(app)).sort();
  const containers = ids.map((id) => `slipway-${id}`).sort();
  t.same(running(), containers, 'the agent runs one container per dyno');
  const before = await eventually('the agent to report both dynos up with a process', async () => {
    const d = await agentDynos();
    return d.length === 2 && d.every((x) => x.state === 'up' && x.pid > 0) ? d : undefined;
  }, 30_000);
  const startsSent = () => agent.lines.filter((l) => l.msg === 'start_dyno').map((l) => l.dynoId as string).sort();
  t.same(startsSent(), ids, 'the agent was sent one start_dyno per dyno');

  // 1. SIGKILL of the leader, while one dyno crashes (its process killed in its container): the
  // crash, the restart and the dyno up again happen around the leader's death.
  const victim1 = before.find((d) => d.id === ids[0])!;
  process.kill(victim1.pid as number, 'SIGKILL');
  const killedAt = Date.now();
  await killHard(host, a.proc);
  // On a SIGKILL the kernel closes the lock connection and PostgreSQL frees the lock at once;
  // the bound still allows for it to learn only by the session's timeout.
  const killBound = welcomedByMs(SESSION_MS + RETRY_MS + ELECTION_MS);
  const second = await eventually('the agent welcomed by the new leader', () => linkReady(b, killedAt), killBound + 5_000);
  const epochOf = (line: Record<string, unknown>): number => line.epoch as number;
  const reconnectMs = at(second) - killedAt;
  t.ok(reconnectMs <= killBound, `the agent was welcomed by the new leader ${reconnectMs} ms after the kill (bound ${killBound} ms)`);
  t.equal(await role(b), 'leader', 'the follower leads');
  t.ok(epochOf(second) > epochOf(first), `under a higher epoch (${epochOf(first)} -> ${epochOf(second)})`);
  t.same(await upOn(b, ids), ids, 'the new leader knows the same two dynos, up');
  const restarted1 = await eventually('the crashed dyno up again in a new process', async () => {
    const d = (await agentDynos()).find((x) => x.id === victim1.id);
    return d?.state === 'up' && d.pid !== victim1.pid ? d : undefined;
  }, 30_000);
  t.not(restarted1.pid, victim1.pid, 'the crashed dyno was restarted by the agent');
  t.same(running(), containers, 'the agent runs the same two containers');
  t.same(startsSent(), ids, 'and was sent no start_dyno by the new leader');
  t.same(b.proc.lines.filter((l) => l.msg === 'dyno admitted'), [], 'the new leader placed nothing');
  const convergedStarts = () => agent.lines.filter((l) => l.msg === 'converging to the coordinator\'s desired set' && (l.started as string[]).length > 0);
  t.same(convergedStarts(), [], 'nor did its welcome make the agent start anything');

  // 2. The killed coordinator comes back where it was (as its service manager would restart
  // it), and follows.
  const a2 = await startCoordinator('coord-a2', a.listen);
  t.equal(await role(a2), 'follower', 'the restarted coordinator follows');
  const before2 = await agentDynos();
  const victim2 = before2.find((d) => d.id === ids[1])!;
  // A connection to the leader's API, accepted before it stops: a request written on it while
  // the leader is stopped is read at its first turn once resumed, beside the agent's events.
  const apiConnection = await openConnection(t, b.apiUrl);
  b.proc.child.kill('SIGSTOP');
  const stoppedAt = Date.now();
  // The other dyno crashes while the leader is stopped: its events reach the stopped leader's
  // socket (the kernel buffers them), never an acknowledgement.
  process.kill(victim2.pid as number, 'SIGKILL');
  await eventually('the follower to lead', async () => (await role(a2)) === 'leader' || undefined, SESSION_MS + RETRY_MS + ELECTION_MS + 5_000);
  const takeoverMs = Date.now() - stoppedAt;
  // A scale-down reaches the stopped leader too: once resumed, it must not act on it. A
  // stop_dyno goes out only after the change is in the store (coordinator/formation-service.ts),
  // and the store refuses the deposed leader's epoch; or the leader has found itself deposed
  // first and refuses the request as a follower.
  const staleScale = requestOn(apiConnection, 'PUT', `/apps/${app}/formation/web`, { quantity: 1, ...formation });
  await sleep(Math.max(0, SESSION_MS + 500 - (Date.now() - stoppedAt)));
  const stoppedMs = Date.now() - stoppedAt;
  t.ok(stoppedMs > SESSION_MS, `the leader was stopped ${stoppedMs} ms, longer than its session timeout (${SESSION_MS} ms); the follower led after ${takeoverMs} ms`);
  b.proc.child.kill('SIGCONT');
  const resumedAt = Date.now();
  const third = await eventually('the agent welcomed by the newest leader', () => linkReady(a2, resumedAt), 15_000);
  const moveMs = at(third) - resumedAt;
  // Once resumed, the old leader ends its term (DEPOSE_MS), closing its agent links with 1012
  // and retry-after-ms=0, and follows; the agent redials after RECONNECT_INITIAL_MS, and that
  // first round reaches the new leader, which already serves (a refused dial of the old one on
  // the way costs a round trip).
  const resumeBound = DEPOSE_MS + welcomedByMs(0);
  t.ok(moveMs <= resumeBound, `the agent moved to the new leader ${moveMs} ms after the old one resumed (bound ${resumeBound} ms)`);
  t.ok(epochOf(third) > epochOf(second), `under a higher epoch again (${epochOf(second)} -> ${epochOf(third)})`);
  await eventually('the resumed leader to follow', async () => (await role(b)) === 'follower' || undefined, 10_000);
  t.pass('the resumed old leader follows (its /healthz says so)');
  const refusedScale = await staleScale;
  t.not(refusedScale.status, 200, `the scale-down sent to the old leader while it was stopped was refused (${refusedScale.status} ${refusedScale.body.slice(0, 120)})`);
  const stored = await withClient(dbUrl, (c) => c.query<{ quantity: number }>('SELECT quantity FROM formations WHERE app = $1 AND type = $2', [app, 'web']));
  t.equal(stored.rows[0]?.quantity, 2, 'the store keeps the formation of two');
  t.match(await getJson(`${a2.apiUrl}/apps/${app}/formation`), [{ type: 'web', quantity: 2 }], 'and so does the new leader');
  t.same(await upOn(a2, ids), ids, 'the new leader knows the same two dynos, up');
  await eventually('the second crashed dyno up again in a new process', async () => {
    const d = (await agentDynos()).find((x) => x.id === victim2.id);
    return d?.state === 'up' && d.pid !== victim2.pid ? d : undefined;
  }, 30_000);
  // The agent stays with the new leader: no later welcome from anyone else.
  await sleep(2_000);
  const welcomes = agent.lines.filter((l) => l.msg === 'coordinator link ready' && at(l) >= resumedAt);
  t.same(welcomes.map((l) => l.url), [a2.agentUrl], 'the agent stays on the new leader');
  t.ok((await getJson(`${a2.apiUrl}/agents`)).find((x: any) => x.id === agentId && x.connected), 'which has it connected');
  t.same(running(), containers, 'the agent runs the same two containers');
  t.same(startsSent(), ids, 'and was sent no start_dyno since the first two');
  t.same(convergedStarts(), [], 'nor started anything from a welcome');
  t.same(agent.lines.filter((l) => l.msg === 'stop_dyno' || l.msg === 'drain'), [], 'nor any stop_dyno or drain: the old leader commanded nothing once resumed');
  // What the resumed leader read before it knew it was deposed, it could apply in memory, but
  // neither store nor acknowledge: the store refuses a write under its old epoch (or its term
  // had ended and its writer took nothing more).
  const unacked = b.proc.lines.filter((l) => l.msg === 'event not made durable: not acknowledged (the agent resends it)' && at(l) >= resumedAt);
  const fenced = unacked.filter((l) => /write under epoch \d+ refused/.test(String((l.err as { message?: string } | undefined)?.message)));
  const staleRefusals = agent.lines.filter((l) => l.msg === 'refused a command from a deposed leader' || l.msg === 'refusing the welcome of a deposed leader; closing its link');
  t.comment(`deposed-leader refusals in the agent's log: ${staleRefusals.length}`);
  for (const c of [b, a2]) t.same(c.proc.lines.filter((l) => l.msg === 'dyno admitted'), [], `${c.id} placed nothing`);

  // Quiesce: scale to 0 through the leader; every event is acknowledged.
  t.equal((await http('PUT', `${a2.apiUrl}/apps/${app}/formation/web`, { quantity: 0, ...formation })).status, 200, 'scale to 0 through the new leader');
  await eventually('all dynos gone', async () => (await appDynos(a2)).length === 0 || undefined, 60_000);
  const journalFile = join(stateDir, 'agent', 'events.jsonl');
  await eventually('nothing left unacknowledged in the agent\'s journal', () => journal(journalFile).pending.length === 0 || undefined, 15_000);
  t.same(journal(journalFile).pending, [], 'every event the agent journaled was acknowledged');

  // What each coordinator applied for good: its run up to what the next leader's welcome
  // acknowledged (the store's ledger when that term began). Beyond it lies what a coordinator
  // applied in memory without making it durable (killed before its write, or fenced once
  // resumed): the agent kept those events and the next leader applied them.
  const runs = [
    { c: a, upTo: second.ackSeq as number },
    { c: b, upTo: third.ackSeq as number },
    { c: a2, upTo: Infinity },
  ].map(({ c, upTo }) => {
    const all = applied(c.proc, agentId);
    return { id: c.id, all, kept: all.filter((e) => e.seq <= upTo), dropped: all.filter((e) => e.seq > upTo) };
  });
  t.same(runs[1]!.dropped.map((e) => e.seq), unacked.map((l) => l.seq as number), `the ${unacked.length} events the resumed leader read were neither stored nor acknowledged by it (${fenced.length} of their writes refused by the store's fence)`);
  const { lastSeq } = journal(journalFile);
  for (const run of runs) {
    const seqs = run.all.map((e) => e.seq);
    t.same(seqs, [...seqs].sort((x, y) => x - y), `${run.id} applied its ${seqs.length} events in order`);
    t.equal(new Set(seqs).size, seqs.length, `${run.id} applied no event twice`);
    t.same(run.dropped.map((e) => e.seq), seqs.slice(seqs.length - run.dropped.length), `${run.id}: only the tail of its run (${run.dropped.length} events) was not durable and went to the next leader`);
  }
  const kept = runs.flatMap((r) => r.kept.map((e) => e.seq)).sort((x, y) => x - y);
  t.same(kept, Array.from({ length: lastSeq }, (_, i) => i + 1), `the events applied for good are seq 1..${lastSeq}, each once (${runs.map((r) => `${r.id} ${r.kept.length}+${r.dropped.length}`).join(', ')})`);
  t.ok(runs[0]!.all.some((e) => e.dynoId === victim1.id && e.state === 'crashed') || runs[1]!.all.some((e) => e.dynoId === victim1.id && e.state === 'crashed'), 'the first crash reached a coordinator');
  t.ok(runs[2]!.all.some((e) => e.dynoId === victim2.id && e.state === 'crashed'), 'the second crash, sent to the stopped leader, reached the new one');
  t.comment(JSON.stringify({ reconnectMs, killBound, takeoverMs, stoppedMs, moveMs, resumeBound, lastSeq, epochs: [first, second, third].map(epochOf), staleScale: refusedScale.status, unacked: unacked.length, fenced: fenced.length, staleRefusals: staleRefusals.length }));

  assertNothingLeft(t, host);
});
