// The coordinator link across failures, with real processes: the reference coordinator and
// the agent (built executables), two crash-looping web dynos in runc containers making a
// steady stream of state changes.
//  1. The coordinator is SIGKILLed while dynos change state, and a new one starts on the same
//     address 3 s later: the agent redials, and every change reaches a coordinator exactly
//     once and in order (the union of what both applied is seq 1..N without a gap; neither
//     applied a seq twice; per dyno, each change starts from the state the previous one ended in).
//  2. The coordinator is SIGKILLed again, then the agent, with events not yet acknowledged in
//     its journal: after both restart, those events arrive at the new coordinator, first and
//     in order, under the same numbering.
// The reference coordinator keeps its state in memory, so each new one knows only what it
// applied itself; its debug log lists every event it applied ('dyno state').
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventually } from '../../helpers/host.js';
import { spawnBin, type Spawned } from '../../helpers/processes.js';
import { getJson, http } from '../../helpers/http.js';
import { assertNothingLeft, e2eHost, killHard } from './fixtures/e2e-host.js';

interface Applied { seq: number; dynoId: string; from: string | null; state: string }

/** The events a coordinator process applied, from its debug log, in the order it applied them. */
function applied(coordinator: Spawned, agentId: string): Applied[] {
  return coordinator.lines
    .filter((l) => l.msg === 'dyno state' && l.agentId === agentId)
    .map((l) => ({ seq: l.seq as number, dynoId: l.dynoId as string, from: (l.from as string | null) ?? null, state: l.state as string }));
}

/** Seqs of the events the agent's journal holds unacknowledged (events.jsonl: {"e":…}, {"a":N}). */
function journalPending(file: string): number[] {
  let acked = 0;
  const seqs: number[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    try {
      const row = JSON.parse(line) as { e?: { seq: number }; a?: number; seq?: number };
      if (row.e) seqs.push(row.e.seq);
      else if (typeof row.a === 'number') acked = Math.max(acked, row.a);
    } catch { /* a torn last line */ }
  }
  return seqs.filter((s) => s > acked);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('coordinator and agent killed while dynos change state: every change arrives once, in order', async (t) => {
  const host = await e2eHost(t, 'resume', { 'public/index.html': 'hello\n' }, { restarts: { baseMs: 200, capMs: 400, stableAfterMs: 600_000, jitter: 0 } });
  const { stateDir, app, cgroupParent, token, tokenFile, slug, procs } = host;
  // Crash restarts every few hundred ms (the first is immediate), so state changes keep coming.
  const { configFile } = host;
  const kill = (p: Spawned) => killHard(host, p);

  let listen = '127.0.0.1:0';
  const startCoordinator = async () => {
    const c = spawnBin('coordinator', ['serve', '--listen', listen, '--router-listen', '127.0.0.1:0'], { SLIPWAY_COORDINATOR_TOKEN: token, SLIPWAY_LOG_LEVEL: 'debug' });
    procs.push(c);
    const listening = await c.waitFor('coordinator listening');
    listen = new URL(listening.apiUrl as string).host; // the next one takes the same address
    return { c, apiUrl: listening.apiUrl as string, agentUrl: listening.agentUrl as string };
  };
  const a = await startCoordinator();
  const agentId = `agent-${app}`;
  const agentArgs = [
    'serve', '--config', configFile, '--coordinator', a.agentUrl, '--token-file', tokenFile, '--state-dir', stateDir,
    '--address', '127.0.0.1', '--cgroup-parent', cgroupParent, '--diagnostics-listen', '127.0.0.1:0',
    '--port-range', '34000-34999', '--reserved-memory-mb', '512', '--stop-grace-ms', '1000', '--agent-id', agentId,
  ];
  const startAgent = async () => {
    const agent = spawnBin('agent', agentArgs);
    procs.push(agent);
    await agent.waitFor('agent started', 30_000);
    return agent;
  };
  const connected = (apiUrl: string) => eventually('the agent to connect', async () => (await getJson(`${apiUrl}/agents`)).find((x: any) => x.id === agentId && x.connected), 30_000);

  const agent = await startAgent();
  await connected(a.apiUrl);
  const command = 'httpd -p $PORT -h /app/public; sleep 1; exit 3';
  const formation = { size: 'standard-1x', command, slug: { url: host.slugUrl, sha256: slug.sha256 } };
  t.equal((await http('PUT', `${a.apiUrl}/apps/${app}/formation/web`, { quantity: 2, ...formation })).status, 200);
  await eventually('the first coordinator to apply 8 changes', async () => applied(a.c, agentId).length >= 8 || undefined, 60_000);

  // 1. The coordinator dies; changes go on without it.
  await kill(a.c);
  const seqAtKill = Math.max(...applied(a.c, agentId).map((e) => e.seq));
  await sleep(3_000);
  const b = await startCoordinator();
  await connected(b.apiUrl);
  await eventually('the second coordinator to receive what happened while none ran, and more', async () => {
    const got = applied(b.c, agentId);
    return got.length >= 8 && Math.max(...got.map((e) => e.seq)) > seqAtKill + 6 || undefined;
  }, 60_000);

  // 2. The coordinator dies again; a moment later the agent dies too, with unacknowledged
  // events in its journal.
  await kill(b.c);
  await sleep(2_000);
  await kill(agent);
  const pendingAtAgentDeath = journalPending(join(stateDir, 'agent', 'events.jsonl'));
  t.ok(pendingAtAgentDeath.length > 0, `the agent died holding ${pendingAtAgentDeath.length} unacknowledged events`);

  const c = await startCoordinator();
  await startAgent();
  await connected(c.apiUrl);
  await eventually('the third coordinator to receive the events the dead agent held', async () => {
    const seqs = new Set(applied(c.c, agentId).map((e) => e.seq));
    return pendingAtAgentDeath.every((s) => seqs.has(s)) || undefined;
  }, 30_000);
  const fromC = applied(c.c, agentId);
  t.same(fromC.slice(0, pendingAtAgentDeath.length).map((e) => e.seq), pendingAtAgentDeath, 'they arrive first, in order, with their numbers');

  // Quiesce: scale to 0, and let the last events be acknowledged.
  t.equal((await http('PUT', `${c.apiUrl}/apps/${app}/formation/web`, { quantity: 0, ...formation })).status, 200);
  await eventually('all dynos gone', async () => (await getJson(`${c.apiUrl}/dynos`)).filter((d: any) => d.app === app).length === 0 || undefined, 60_000);
  await eventually('nothing left unacknowledged', async () => journalPending(join(stateDir, 'agent', 'events.jsonl')).length === 0 || undefined, 15_000);

  const runs = [applied(a.c, agentId), applied(b.c, agentId), applied(c.c, agentId)];
  for (const [i, run] of runs.entries()) {
    const seqs = run.map((e) => e.seq);
    t.same(seqs, [...seqs].sort((x, y) => x - y), `coordinator ${i + 1} applied the events in order`);
    t.equal(new Set(seqs).size, seqs.length, `coordinator ${i + 1} applied no event twice`);
  }
  // Across coordinators: nothing missing. An event the dying coordinator applied but whose ack
  // never reached the agent is resent to the next one: that overlap can only be the tail of
  // the dead coordinator's run.
  const bySeq = new Map<number, Applied>();
  for (const run of runs) for (const e of run) bySeq.set(e.seq, e);
  const last = Math.max(...bySeq.keys());
  const missing = Array.from({ length: last }, (_, i) => i + 1).filter((s) => !bySeq.has(s));
  t.same(missing, [], `every change 1..${last} reached a coordinator`);
  for (const [i, run] of runs.slice(0, 2).entries()) {
    const next = runs[i + 1]!;
    const overlap = run.filter((e) => next.some((n) => n.seq === e.seq)).map((e) => e.seq);
    t.same(overlap, run.slice(run.length - overlap.length).map((e) => e.seq), `coordinator ${i + 2} re-received only the unacknowledged tail of coordinator ${i + 1} (${overlap.length} events)`);
  }
  // In order per dyno: each change starts where the previous one ended. The one exception is
  // the restarted agent's first report of each dyno it re-adopted (`from: null`: what it found,
  // e.g. `crashed` for a dyno that exited while no agent ran): exactly one per dyno here, as an
  // event (not only in the hello's snapshot), since both dynos existed when the agent died.
  const byDyno = new Map<string, Applied[]>();
  for (const s of [...bySeq.keys()].sort((x, y) => x - y)) {
    const e = bySeq.get(s)!;
    byDyno.set(e.dynoId, [...(byDyno.get(e.dynoId) ?? []), e]);
  }
  for (const [dynoId, changes] of byDyno) {
    const readopted = changes.slice(1).filter((e) => e.from === null);
    const breaks = changes.slice(1).filter((e, i) => e.from !== null && e.from !== changes[i]!.state);
    if (breaks.length > 0) t.comment(JSON.stringify(changes));
    t.same(breaks, [], `${dynoId}: ${changes.length} changes, each from the state the last one ended in`);
    t.equal(readopted.length, 1, `${dynoId}: its re-adoption after the agent restart reported as an event`);
  }

  assertNothingLeft(t, host);
});
