// Driver of scripts/bench/fleet.sh; see there. The reference coordinator (dist/) runs as its
// own process so that its CPU and memory can be read from /proc; the simulated agents run in
// WORKERS child processes (fleet-agents.mjs).
import { fork, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { http, procUsage, sleep, until as poll } from './lib.mjs';

const ROOT = resolve(import.meta.dirname, '../..');
const AGENTS = Number(process.argv[2] ?? 2000);
const WORKERS = Number(process.argv[3] ?? 4);
const STEADY_S = Number(process.argv[4] ?? 30);
const TOKEN = 'fleet-bench-token-0123456789';
const START_RATE = 400; // initial boot of the simulated fleet, agents a second (not measured)
const until = (what, fn, timeoutMs) => poll(what, fn, timeoutMs, 100);
const TARGETS = { reconnectS: 60, attemptsPerS: 200, kbPerAgent: 50, placementP99Ms: 5 };

const usage = procUsage;
/** CPU over the window, and the median of RSS sampled every second (GC makes single samples noisy). */
async function window(pid, seconds) {
  const a = usage(pid); const t0 = Date.now();
  const rss = [];
  for (let i = 0; i < seconds; i++) { await sleep(1000); rss.push(usage(pid).rssKb); }
  const b = usage(pid);
  rss.sort((x, y) => x - y);
  return { cpuPct: ((b.cpu - a.cpu) / ((Date.now() - t0) / 1000)) * 100, rssKb: rss[Math.floor(rss.length / 2)] };
}
async function freePort() {
  const s = createServer(); s.listen(0, '127.0.0.1');
  await new Promise((r) => s.once('listening', r));
  const { port } = s.address(); await new Promise((r) => s.close(r));
  return port;
}
/** Most timestamps within any one 1,000 ms window. */
function maxPerSecond(ts) {
  const s = [...ts].sort((a, b) => a - b);
  let best = 0; let lo = 0;
  for (let hi = 0; hi < s.length; hi++) { while (s[hi] - s[lo] >= 1000) lo++; best = Math.max(best, hi - lo + 1); }
  return best;
}
const pct = (sorted, q) => sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] : 0;

function startCoordinator(port) {
  const child = spawn(process.execPath, [join(ROOT, 'dist/coordinator/main.js'), 'serve', '--listen', `127.0.0.1:${port}`, '--router-listen', '127.0.0.1:0'], {
    env: { ...process.env, SLIPWAY_COORDINATOR_TOKEN: TOKEN, SLIPWAY_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'inherit'],
  });
  return child;
}

async function main() {
  const port = await freePort();
  const api = `http://127.0.0.1:${port}`;
  const url = `ws://127.0.0.1:${port}/v1/agent`;
  let coordinator = startCoordinator(port);
  const workers = [];
  const cleanup = () => {
    for (const w of workers) { try { w.kill('SIGKILL'); } catch { /* gone */ } }
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
  const ready = new Array(WORKERS).fill(0);
  let dials = [];
  const per = Math.ceil(AGENTS / WORKERS);
  for (let w = 0; w < WORKERS; w++) {
    const count = Math.min(per, AGENTS - w * per);
    const child = fork(join(ROOT, 'scripts/bench/fleet-agents.mjs'), [url, TOKEN, String(w * per), String(count), String(START_RATE / WORKERS)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.on('message', (m) => { ready[w] = m.ready; dials.push(...m.dials); });
    workers.push(child);
  }
  const allReady = () => ready.reduce((a, b) => a + b, 0) === AGENTS;
  const t0 = Date.now();
  await until(`${AGENTS} agents connected`, async () => allReady(), 120_000);
  console.log(`fleet: ${AGENTS} agents connected in ${((Date.now() - t0) / 1000).toFixed(1)} s (started at ${START_RATE}/s)`);

  // Steady state.
  await sleep(5000);
  const steady = await window(coordinator.pid, STEADY_S);
  const kbPerAgent = (steady.rssKb - baseline.rssKb) / AGENTS;
  console.log(`fleet: steady ${STEADY_S} s with ${AGENTS} idle agents: coordinator RSS ${(steady.rssKb / 1024).toFixed(1)} MB, ` +
    `${kbPerAgent.toFixed(1)} KB per agent over the 0-agent baseline (target < ${TARGETS.kbPerAgent}), CPU ${steady.cpuPct.toFixed(2)}% of a core`);

  // Placement: 100 formations of 5 dynos.
  const rtts = [];
  for (let i = 0; i < 100; i++) {
    const body = { quantity: 5, size: 'standard-1x', command: 'web', slug: { url: 'http://127.0.0.1:1/s.tgz', sha256: 'a'.repeat(64) } };
    const a = performance.now();
    const r = await http('PUT', `${api}/apps/app-${String(i).padStart(3, '0')}/formation/web`, body);
    rtts.push(performance.now() - a);
    if (r.status !== 200) throw new Error(`formation ${i}: ${r.status} ${r.body}`);
  }
  const health = JSON.parse((await http('GET', `${api}/healthz`)).body);
  const placement = health.placement;
  rtts.sort((a, b) => a - b);
  console.log(`fleet: placement over ${AGENTS} agents: ${placement.count} decisions, p50 ${placement.p50Ms} ms, p99 ${placement.p99Ms} ms, max ${placement.maxMs} ms ` +
    `(target p99 < ${TARGETS.placementP99Ms} ms); PUT formation of 5 round trip p50 ${pct(rtts, 0.5).toFixed(1)} ms, p99 ${pct(rtts, 0.99).toFixed(1)} ms`);

  // Restarts: a crash (SIGKILL; agents spread by the welcome's hint) and a graceful one
  // (SIGTERM; the coordinator names each agent a slot).
  const results = {};
  for (const kind of ['crash', 'graceful']) {
    const exited = new Promise((r) => coordinator.once('exit', r));
    const killedAt = Date.now();
    coordinator.kill(kind === 'crash' ? 'SIGKILL' : 'SIGTERM');
    await exited;
    await until('every agent to notice', async () => ready.every((r) => r === 0) || undefined, 30_000).catch(() => undefined);
    dials = [];
    if (kind === 'crash') await sleep(1000); // the process manager's restart delay
    coordinator = startCoordinator(port);
    await until('the new coordinator', async () => (await http('GET', `${api}/healthz`)).status === 200, 20_000);
    const upAt = Date.now();
    const curve = [];
    await until(`${AGENTS} agents back`, async () => {
      const n = ready.reduce((a, b) => a + b, 0);
      curve.push([Date.now() - upAt, n]);
      return n === AGENTS || undefined;
    }, 180_000);
    const backS = (Date.now() - upAt) / 1000;
    await sleep(500);
    const at = (q) => ((curve.find(([, n]) => n >= q * AGENTS)?.[0] ?? 0) / 1000).toFixed(1);
    const peak = maxPerSecond(dials);
    results[kind] = { backS, peak, attempts: dials.length, p50: at(0.5), p90: at(0.9), downS: (upAt - killedAt) / 1000 };
    console.log(`fleet: ${kind} restart (coordinator down ${results[kind].downS.toFixed(1)} s): all ${AGENTS} agents back ${backS.toFixed(1)} s after it listened ` +
      `(50% at ${at(0.5)} s, 90% at ${at(0.9)} s; target < ${TARGETS.reconnectS} s); ${dials.length} connection attempts, at most ${peak} in any one second (target <= ${TARGETS.attemptsPerS})`);
    await sleep(3000);
  }

  const met = (ok) => (ok ? 'MET' : 'MISSED');
  console.log(`fleet: summary for ${AGENTS} agents on this machine (${WORKERS} agent processes + the coordinator):`);
  console.log(`  coordinator RSS ${AGENTS} agents / 0 agents (same run) = ${(steady.rssKb / baseline.rssKb).toFixed(2)}x; CPU ${steady.cpuPct.toFixed(2)}% / ${baseline.cpuPct.toFixed(2)}% of a core`);
  console.log(`  memory per idle agent ${kbPerAgent.toFixed(1)} KB / ${TARGETS.kbPerAgent} KB = ${(kbPerAgent / TARGETS.kbPerAgent).toFixed(2)}x of the budget: ${met(kbPerAgent < TARGETS.kbPerAgent)}`);
  console.log(`  placement p99 ${placement.p99Ms} ms / ${TARGETS.placementP99Ms} ms = ${(placement.p99Ms / TARGETS.placementP99Ms).toFixed(2)}x: ${met(placement.p99Ms < TARGETS.placementP99Ms)}`);
  for (const kind of ['crash', 'graceful']) {
    const r = results[kind];
    console.log(`  ${kind} restart: back in ${r.backS.toFixed(1)} s (${met(r.backS <= TARGETS.reconnectS)}), peak ${r.peak} attempts/s (${met(r.peak <= TARGETS.attemptsPerS)})`);
  }
  console.log(JSON.stringify({ agents: AGENTS, kbPerAgent, steadyCpuPct: steady.cpuPct, placement, restarts: results }));

  for (const w of workers) w.send('stop');
  await Promise.race([Promise.all(workers.map((w) => new Promise((r) => w.once('exit', r)))), sleep(10_000)]);
  coordinator.kill('SIGTERM');
  await Promise.race([new Promise((r) => coordinator.once('exit', r)), sleep(5_000)]);
}

main().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });
