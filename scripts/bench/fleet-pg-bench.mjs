// Driver of `scripts/bench/fleet.sh --postgres` (issue 15); see there. fleet.sh has started a
// private PostgreSQL cluster and copied the build to WORK/dist; this drives, in one run:
//  1. (unless SLIPWAY_BENCH_MEMORY_STORE=0) the in-memory store, for comparison: one
//     coordinator, its RSS with 0 agents and with AGENTS, and placement over them;
//  2. the state in PostgreSQL: coordinator A is elected leader, B follows on the same
//     database; the same figures on A, with every agent given both URLs [A, B] (the agent's
//     coordinatorUrls: the session tries them in turn, url-rotation.ts);
//  3. A is killed (SIGKILL): B takes the lock; until every agent is ready on B, the attempts
//     a second (at B, and overall: dials of the dead A included); then, after a settle, the
//     dynos B knows against those A knew before the kill, and what the agents were told.
// Every child's pid goes to WORK/pids, so that fleet.sh's trap can end them even if this
// process is killed; on any exit here they are SIGKILLed.
import { appendFileSync, openSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { getJson, http, sleep } from './lib.mjs';
import { START_RATE, TARGETS, freePort, maxPerSecond, met, runPlacement, startCoordinator, startFleet, stopProcess, until, window } from './fleet-lib.mjs';

const AGENTS = Number(process.argv[2] ?? 2000);
const WORKERS = Number(process.argv[3] ?? 4);
const STEADY_S = Number(process.argv[4] ?? 30);
const WORK = process.argv[5];
if (!WORK) throw new Error('usage: fleet-pg-bench.mjs AGENTS WORKERS STEADY_S WORK (run through scripts/bench/fleet.sh --postgres)');
const DIST = join(WORK, 'dist');
const DB_FILE = join(WORK, 'database-url');
const COMPARE_MEMORY = process.env.SLIPWAY_BENCH_MEMORY_STORE !== '0';
/** After every agent is back on the new leader: how long to keep watching for a dyno placed
 * again or stopped (a leader that thought one missing would act within a few seconds). */
const SETTLE_MS = 10_000;
const DYNOS = 500; // runPlacement: 100 formations of 5

const children = new Set();
const fleets = new Set();
const track = (child) => {
  children.add(child);
  appendFileSync(join(WORK, 'pids'), `${child.pid}\n`);
  return child;
};
process.on('exit', () => {
  for (const f of fleets) f.kill();
  for (const c of children) { try { c.kill('SIGKILL'); } catch { /* gone */ } }
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(1));

function coordinator(name, port, args = []) {
  const fd = openSync(join(WORK, `coordinator-${name}.log`), 'a');
  const child = track(startCoordinator({ dist: DIST, port, args, stdio: ['ignore', fd, fd] }));
  return { name, child, api: `http://127.0.0.1:${port}`, agentUrl: `ws://127.0.0.1:${port}/v1/agent` };
}
const pgCoordinator = (name, port) => coordinator(name, port, ['--coordinator-id', `bench-${name}`, '--database-url-file', DB_FILE]);

function fleetOn(urls) {
  const f = startFleet({ dist: DIST, urls, agents: AGENTS, workers: WORKERS, onSpawn: track });
  fleets.add(f);
  return f;
}

const mb = (kb) => (kb / 1024).toFixed(1);
const s1 = (ms) => (ms / 1000).toFixed(1);

/** Baseline, the fleet connected on urls[0], steady state, placement: the figures the
 * in-memory run and the PostgreSQL leader share. Returns the fleet, still running. */
async function steadyFigures(label, c, urls) {
  for (let i = 0; i < 50; i++) { await http('GET', `${c.api}/healthz`); await http('GET', `${c.api}/agents`); }
  await sleep(2000);
  const baseline = await window(c.child.pid, 10);
  const fleet = fleetOn(urls);
  const t0 = Date.now();
  await until(`${AGENTS} agents connected (${label})`, async () => fleet.ready(0) === AGENTS, 120_000);
  const connectS = (Date.now() - t0) / 1000;
  await sleep(5000);
  const steady = await window(c.child.pid, STEADY_S);
  const kbPerAgent = (steady.rssKb - baseline.rssKb) / AGENTS;
  const { placement, rttP50, rttP99 } = await runPlacement(c.api);
  console.log(`fleet[${label}]: ${AGENTS} agents connected in ${connectS.toFixed(1)} s (started at ${START_RATE}/s); coordinator RSS ${mb(baseline.rssKb)} MB with 0 agents, ` +
    `${mb(steady.rssKb)} MB with ${AGENTS} idle = ${kbPerAgent.toFixed(1)} KB per agent (target < ${TARGETS.kbPerAgent}); CPU ${steady.cpuPct.toFixed(2)}% of a core (${baseline.cpuPct.toFixed(2)}% with 0)`);
  console.log(`fleet[${label}]: placement over ${AGENTS} agents: ${placement.count} decisions, p50 ${placement.p50Ms} ms, p99 ${placement.p99Ms} ms, max ${placement.maxMs} ms ` +
    `(target p99 < ${TARGETS.placementP99Ms} ms); PUT formation of 5 round trip p50 ${rttP50.toFixed(1)} ms, p99 ${rttP99.toFixed(1)} ms`);
  return { fleet, figures: { connectS, baselineRssKb: baseline.rssKb, steadyRssKb: steady.rssKb, kbPerAgent, cpuPct: steady.cpuPct, placement, putRttP50Ms: rttP50, putRttP99Ms: rttP99 } };
}

async function memoryRun() {
  const c = coordinator('memory', await freePort());
  await until('the in-memory coordinator', async () => (await http('GET', `${c.api}/healthz`)).status === 200, 20_000);
  const { fleet, figures } = await steadyFigures('memory', c, [c.agentUrl]);
  await fleet.stop();
  fleets.delete(fleet);
  await stopProcess(c.child);
  return figures;
}

async function main() {
  // The host's load is printed: on a shared machine the p99 figures move with it.
  const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
  const loadAtStart = load();
  console.log(`fleet: ${AGENTS} agents in ${WORKERS} processes; store comparison: ${COMPARE_MEMORY ? 'memory, then PostgreSQL' : 'PostgreSQL only'}; load average ${loadAtStart}; work dir ${WORK}`);
  const memory = COMPARE_MEMORY ? await memoryRun() : undefined;

  // The state in PostgreSQL: A leads (started first and waited for), B follows.
  const a = pgCoordinator('a', await freePort());
  const epochA = await until('coordinator A to lead', async () => {
    const r = await http('GET', `${a.api}/v1/leader`);
    return r.status === 200 ? JSON.parse(r.body).epoch : undefined;
  }, 30_000);
  const b = pgCoordinator('b', await freePort());
  await until('coordinator B to follow', async () => (await getJson(`${b.api}/healthz`)).leadership?.role === 'follower', 30_000);
  console.log(`fleet[postgres]: A leads (epoch ${epochA}), B follows; every agent dials [A, B] (the session's urls: it moves to the next URL on a refusal)`);
  const { fleet, figures: pg } = await steadyFigures('postgres', a, [a.agentUrl, b.agentUrl]);

  // Before the kill: every dyno up, every change in the store (nothing pending in A's writer).
  await until(`${DYNOS} dynos up on A`, async () => {
    const dynos = await getJson(`${a.api}/dynos`);
    return dynos.length === DYNOS && dynos.every((d) => d.state === 'up');
  }, 30_000);
  await until("A's store writer to drain", async () => (await getJson(`${a.api}/v1/leader`)).store?.pending === 0, 10_000);
  const before = await getJson(`${a.api}/dynos`);

  const exited = new Promise((r) => a.child.once('exit', r));
  const killedAt = Date.now();
  a.child.kill('SIGKILL');
  await exited;
  let leaderAt;
  let epochB;
  const curve = [];
  await until(`${AGENTS} agents ready on B`, async () => {
    if (leaderAt === undefined) {
      const r = await http('GET', `${b.api}/v1/leader`).catch(() => undefined);
      if (r?.status === 200) { leaderAt = Date.now(); epochB = JSON.parse(r.body).epoch; }
    }
    const n = fleet.ready(1);
    curve.push([Date.now() - killedAt, n]);
    return n === AGENTS || undefined;
  }, 180_000);
  const allAt = Date.now();
  await sleep(SETTLE_MS);
  const after = await getJson(`${b.api}/dynos`);
  const healthB = await getJson(`${b.api}/healthz`);
  const told = await fleet.report();

  // Attempts after the kill: overall (A's refused dials included) and at B alone.
  const overall = fleet.dialsSince(killedAt);
  const atB = fleet.dialsSince(killedAt, 1);
  const at = (q) => s1(curve.find(([, n]) => n >= q * AGENTS)?.[0] ?? 0);
  // Dynos: the ids B knows are the ids A knew, on the same agents, each up; no start_dyno
  // after the kill, no welcome asking an agent to start one it does not run, none left
  // unlisted (lost), none stopped; and each id held by exactly one agent.
  const key = (d) => `${d.id}@${d.agentId}`;
  const beforeKeys = new Set(before.map(key));
  const afterKeys = new Set(after.map(key));
  const missing = [...beforeKeys].filter((k) => !afterKeys.has(k));
  const extra = [...afterKeys].filter((k) => !beforeKeys.has(k));
  const notUp = after.filter((d) => d.state !== 'up');
  const since = (xs) => xs.filter((x) => x.at >= killedAt);
  const startsAfter = since(told.starts);
  const startsOfPlaced = startsAfter.filter((s) => s.already || before.some((d) => d.id === s.dynoId));
  const heldBy = new Map();
  for (const h of told.held) heldBy.set(h.dynoId, [...(heldBy.get(h.dynoId) ?? []), h.agent]);
  const heldTwice = [...heldBy.values()].filter((agents) => agents.length > 1).length;
  const heldMissing = before.filter((d) => !(heldBy.get(d.id) ?? []).includes(d.agentId)).length;
  const dynosOk = missing.length === 0 && extra.length === 0 && notUp.length === 0 && startsAfter.length === 0 && heldTwice === 0 && heldMissing === 0 &&
    since(told.welcomeStarts).length === 0 && since(told.unlisted).length === 0 && since(told.stops).length === 0 && after.length === DYNOS;

  const failover = {
    leaderS: (leaderAt - killedAt) / 1000, allS: (allAt - killedAt) / 1000, afterLeaderS: (allAt - leaderAt) / 1000,
    p50S: Number(at(0.5)), p90S: Number(at(0.9)), epochA, epochB, attempts: overall.length, attemptsAtB: atB.length,
    peakOverall: maxPerSecond(overall), peakAtB: maxPerSecond(atB), connectedOnB: healthB.agentsConnected,
    dynos: { before: before.length, after: after.length, missing: missing.length, extra: extra.length, notUp: notUp.length,
      startsAfter: startsAfter.length, startsOfPlaced: startsOfPlaced.length, welcomeStarts: since(told.welcomeStarts).length,
      unlisted: since(told.unlisted).length, stops: since(told.stops).length, heldTwice, heldMissing, ok: dynosOk },
  };
  console.log(`fleet[postgres]: leader A killed (SIGKILL): B leads ${failover.leaderS.toFixed(1)} s later (epoch ${epochA} -> ${epochB}); all ${AGENTS} agents ready on B ` +
    `${failover.allS.toFixed(1)} s after the kill (50% at ${at(0.5)} s, 90% at ${at(0.9)} s; target < ${TARGETS.reconnectS} s); B counts ${healthB.agentsConnected} connected`);
  console.log(`fleet[postgres]: after the kill ${overall.length} connection attempts, at most ${failover.peakOverall} in any one second overall; ` +
    `${atB.length} at B, at most ${failover.peakAtB} in any one second (target <= ${TARGETS.attemptsPerS})`);
  console.log(`fleet[postgres]: dynos: ${before.length} on A before the kill, ${after.length} on B ${SETTLE_MS / 1000} s after all were back; ` +
    `missing ${missing.length}, extra ${extra.length}, not up ${notUp.length}; after the kill: start_dyno ${startsAfter.length} (${startsOfPlaced.length} of a placed dyno), ` +
    `welcome specs to start ${failover.dynos.welcomeStarts}, left unlisted ${failover.dynos.unlisted}, stop_dyno ${failover.dynos.stops}; held by two agents ${heldTwice}, ` +
    `not held where placed ${heldMissing}`);
  if (!dynosOk) console.log(`fleet[postgres]: dyno differences: missing ${missing.slice(0, 5).join(' ')} extra ${extra.slice(0, 5).join(' ')} starts ${startsAfter.slice(0, 5).map((s) => `${s.dynoId}@${s.agent}`).join(' ')}`);

  console.log(`fleet: summary for ${AGENTS} agents on this machine (${WORKERS} agent processes, coordinators, PostgreSQL; load average ${loadAtStart} at the start, ${load()} now):`);
  if (memory) {
    console.log(`  memory per idle agent: ${pg.kbPerAgent.toFixed(1)} KB with PostgreSQL, ${memory.kbPerAgent.toFixed(1)} KB in memory = ${(pg.kbPerAgent / memory.kbPerAgent).toFixed(2)}x; ` +
      `PostgreSQL ${(pg.kbPerAgent / TARGETS.kbPerAgent).toFixed(2)}x of the ${TARGETS.kbPerAgent} KB budget: ${met(pg.kbPerAgent < TARGETS.kbPerAgent)}`);
    console.log(`  placement p50 / p99: ${pg.placement.p50Ms} / ${pg.placement.p99Ms} ms with PostgreSQL, ${memory.placement.p50Ms} / ${memory.placement.p99Ms} ms in memory = ` +
      `${(pg.placement.p99Ms / memory.placement.p99Ms).toFixed(2)}x at p99; p99 / ${TARGETS.placementP99Ms} ms = ${(pg.placement.p99Ms / TARGETS.placementP99Ms).toFixed(2)}x: ${met(pg.placement.p99Ms < TARGETS.placementP99Ms)}`);
    console.log(`  PUT formation of 5 p50 / p99: ${pg.putRttP50Ms.toFixed(1)} / ${pg.putRttP99Ms.toFixed(1)} ms with PostgreSQL, ${memory.putRttP50Ms.toFixed(1)} / ${memory.putRttP99Ms.toFixed(1)} ms in memory`);
  } else {
    console.log(`  memory per idle agent ${pg.kbPerAgent.toFixed(1)} KB / ${TARGETS.kbPerAgent} KB = ${(pg.kbPerAgent / TARGETS.kbPerAgent).toFixed(2)}x: ${met(pg.kbPerAgent < TARGETS.kbPerAgent)}`);
    console.log(`  placement p50 / p99 ${pg.placement.p50Ms} / ${pg.placement.p99Ms} ms; p99 / ${TARGETS.placementP99Ms} ms = ${(pg.placement.p99Ms / TARGETS.placementP99Ms).toFixed(2)}x: ${met(pg.placement.p99Ms < TARGETS.placementP99Ms)}`);
  }
  console.log(`  failover: all ${AGENTS} on the new leader ${failover.allS.toFixed(1)} s after the kill: ${met(failover.allS <= TARGETS.reconnectS)}; ` +
    `peak ${failover.peakAtB} attempts/s at the new leader (${met(failover.peakAtB <= TARGETS.attemptsPerS)}), ${failover.peakOverall} overall (${met(failover.peakOverall <= TARGETS.attemptsPerS)})`);
  console.log(`  dynos: ${before.length} before = ${after.length} after, none lost, none placed twice: ${met(dynosOk)}`);
  console.log(JSON.stringify({ agents: AGENTS, workers: WORKERS, loadavg: [loadAtStart, load()], memory, postgres: pg, failover }));

  await fleet.stop();
  await stopProcess(b.child);
  const ok = dynosOk && failover.allS <= TARGETS.reconnectS && failover.peakAtB <= TARGETS.attemptsPerS && failover.peakOverall <= TARGETS.attemptsPerS;
  return ok;
}

main().then((ok) => process.exit(ok ? 0 : 3), (err) => {
  console.error(err);
  console.error(`fleet: coordinator logs are in ${WORK} (kept: SLIPWAY_BENCH_KEEP=1)`);
  process.exit(1);
});
