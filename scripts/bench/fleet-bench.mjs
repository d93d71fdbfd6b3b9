// Driver of scripts/bench/fleet.sh (the state in memory, one coordinator); see there. The
// reference coordinator (dist/) runs as its own process so that its CPU and memory can be
// read from /proc; the simulated agents run in WORKERS child processes (fleet-agents.mjs).
// What this shares with the PostgreSQL run (fleet-pg-bench.mjs) is in fleet-lib.mjs.
import { join, resolve } from 'node:path';
import { http, sleep } from './lib.mjs';
import { START_RATE, TARGETS, freePort, maxPerSecond, met, runPlacement, startCoordinator, startFleet, until, window } from './fleet-lib.mjs';

const ROOT = resolve(import.meta.dirname, '../..');
const DIST = join(ROOT, 'dist');
const AGENTS = Number(process.argv[2] ?? 2000);
const WORKERS = Number(process.argv[3] ?? 4);
const STEADY_S = Number(process.argv[4] ?? 30);

async function main() {
  const port = await freePort();
  const api = `http://127.0.0.1:${port}`;
  const url = `ws://127.0.0.1:${port}/v1/agent`;
  let coordinator = startCoordinator({ dist: DIST, port });
  let fleet;
  const cleanup = () => {
    fleet?.kill();
    try { coordinator.kill('SIGKILL'); } catch { /* gone */ }
  };
  process.on('exit', cleanup);
  await until('the coordinator', async () => (await http('GET', `${api}/healthz`)).status === 200, 20_000);
  // Warm up the API paths the run uses, then take the 0-agent baseline.
  for (let i = 0; i < 50; i++) { await http('GET', `${api}/healthz`); await http('GET', `${api}/agents`); }
  await sleep(2000);
  const baseline = await window(coordinator.pid, 10);
  console.log(`fleet: coordinator with 0 agents: RSS ${(baseline.rssKb / 1024).toFixed(1)} MB, CPU ${baseline.cpuPct.toFixed(2)}% of a core`);

  // The simulated fleet.
  fleet = startFleet({ dist: DIST, urls: [url], agents: AGENTS, workers: WORKERS });
  const t0 = Date.now();
  await until(`${AGENTS} agents connected`, async () => fleet.ready() === AGENTS, 120_000);
  console.log(`fleet: ${AGENTS} agents connected in ${((Date.now() - t0) / 1000).toFixed(1)} s (started at ${START_RATE}/s)`);

  // Steady state.
  await sleep(5000);
  const steady = await window(coordinator.pid, STEADY_S);
  const kbPerAgent = (steady.rssKb - baseline.rssKb) / AGENTS;
  console.log(`fleet: steady ${STEADY_S} s with ${AGENTS} idle agents: coordinator RSS ${(steady.rssKb / 1024).toFixed(1)} MB, ` +
    `${kbPerAgent.toFixed(1)} KB per agent over the 0-agent baseline (target < ${TARGETS.kbPerAgent}), CPU ${steady.cpuPct.toFixed(2)}% of a core`);

  // Placement: 100 formations of 5 dynos.
  const { placement, rttP50, rttP99 } = await runPlacement(api);
  console.log(`fleet: placement over ${AGENTS} agents: ${placement.count} decisions, p50 ${placement.p50Ms} ms, p99 ${placement.p99Ms} ms, max ${placement.maxMs} ms ` +
    `(target p99 < ${TARGETS.placementP99Ms} ms); PUT formation of 5 round trip p50 ${rttP50.toFixed(1)} ms, p99 ${rttP99.toFixed(1)} ms`);

  // Restarts: a crash (SIGKILL; agents spread by the welcome's hint) and a graceful one
  // (SIGTERM; the coordinator names each agent a slot).
  const results = {};
  for (const kind of ['crash', 'graceful']) {
    const exited = new Promise((r) => coordinator.once('exit', r));
    const killedAt = Date.now();
    coordinator.kill(kind === 'crash' ? 'SIGKILL' : 'SIGTERM');
    await exited;
    await until('every agent to notice', async () => fleet.allNoticed() || undefined, 30_000).catch(() => undefined);
    const countFrom = Date.now();
    if (kind === 'crash') await sleep(1000); // the process manager's restart delay
    coordinator = startCoordinator({ dist: DIST, port });
    await until('the new coordinator', async () => (await http('GET', `${api}/healthz`)).status === 200, 20_000);
    const upAt = Date.now();
    const curve = [];
    await until(`${AGENTS} agents back`, async () => {
      const n = fleet.ready();
      curve.push([Date.now() - upAt, n]);
      return n === AGENTS || undefined;
    }, 180_000);
    const backS = (Date.now() - upAt) / 1000;
    await sleep(500);
    const at = (q) => ((curve.find(([, n]) => n >= q * AGENTS)?.[0] ?? 0) / 1000).toFixed(1);
    const dials = fleet.dialsSince(countFrom);
    const peak = maxPerSecond(dials);
    results[kind] = { backS, peak, attempts: dials.length, p50: at(0.5), p90: at(0.9), downS: (upAt - killedAt) / 1000 };
    console.log(`fleet: ${kind} restart (coordinator down ${results[kind].downS.toFixed(1)} s): all ${AGENTS} agents back ${backS.toFixed(1)} s after it listened ` +
      `(50% at ${at(0.5)} s, 90% at ${at(0.9)} s; target < ${TARGETS.reconnectS} s); ${dials.length} connection attempts, at most ${peak} in any one second (target <= ${TARGETS.attemptsPerS})`);
    await sleep(3000);
  }

  console.log(`fleet: summary for ${AGENTS} agents on this machine (${WORKERS} agent processes + the coordinator):`);
  console.log(`  coordinator RSS ${AGENTS} agents / 0 agents (same run) = ${(steady.rssKb / baseline.rssKb).toFixed(2)}x; CPU ${steady.cpuPct.toFixed(2)}% / ${baseline.cpuPct.toFixed(2)}% of a core`);
  console.log(`  memory per idle agent ${kbPerAgent.toFixed(1)} KB / ${TARGETS.kbPerAgent} KB = ${(kbPerAgent / TARGETS.kbPerAgent).toFixed(2)}x of the budget: ${met(kbPerAgent < TARGETS.kbPerAgent)}`);
  console.log(`  placement p99 ${placement.p99Ms} ms / ${TARGETS.placementP99Ms} ms = ${(placement.p99Ms / TARGETS.placementP99Ms).toFixed(2)}x: ${met(placement.p99Ms < TARGETS.placementP99Ms)}`);
  for (const kind of ['crash', 'graceful']) {
    const r = results[kind];
    console.log(`  ${kind} restart: back in ${r.backS.toFixed(1)} s (${met(r.backS <= TARGETS.reconnectS)}), peak ${r.peak} attempts/s (${met(r.peak <= TARGETS.attemptsPerS)})`);
  }
  console.log(JSON.stringify({ agents: AGENTS, kbPerAgent, steadyCpuPct: steady.cpuPct, placement, restarts: results }));

  await fleet.stop();
  coordinator.kill('SIGTERM');
  await Promise.race([new Promise((r) => coordinator.once('exit', r)), sleep(5_000)]);
}

main().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });
