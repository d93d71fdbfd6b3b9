// What the fleet benchmark's drivers share (fleet-bench.mjs: one coordinator in memory;
// fleet-pg-bench.mjs: a leader and a follower over PostgreSQL): the coordinator as a process,
// the simulated fleet in worker processes (fleet-agents.mjs), the steady-state window, the
// placement run, and the counting of attempts a second. Every wait here is bounded.
import { fork, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { API_TOKEN, http, procUsage, sleep, until as poll } from './lib.mjs';

export const TOKEN = 'fleet-bench-token-0123456789';
/** Initial boot of the simulated fleet, agents a second (not measured). */
export const START_RATE = 400;
export const TARGETS = { reconnectS: 60, attemptsPerS: 200, kbPerAgent: 50, placementP99Ms: 5 };
export const until = (what, fn, timeoutMs) => poll(what, fn, timeoutMs, 100);
export const met = (ok) => (ok ? 'MET' : 'MISSED');

/** CPU over the window, and the median of RSS sampled every second (GC makes single samples noisy). */
export async function window(pid, seconds) {
  const a = procUsage(pid); const t0 = Date.now();
  const rss = [];
  for (let i = 0; i < seconds; i++) { await sleep(1000); rss.push(procUsage(pid).rssKb); }
  const b = procUsage(pid);
  rss.sort((x, y) => x - y);
  return { cpuPct: ((b.cpu - a.cpu) / ((Date.now() - t0) / 1000)) * 100, rssKb: rss[Math.floor(rss.length / 2)] };
}

export async function freePort() {
  const s = createServer(); s.listen(0, '127.0.0.1');
  await new Promise((r) => s.once('listening', r));
  const { port } = s.address(); await new Promise((r) => s.close(r));
  return port;
}

/** Most timestamps within any one 1,000 ms window. */
export function maxPerSecond(ts) {
  const s = [...ts].sort((a, b) => a - b);
  let best = 0; let lo = 0;
  for (let hi = 0; hi < s.length; hi++) { while (s[hi] - s[lo] >= 1000) lo++; best = Math.max(best, hi - lo + 1); }
  return best;
}

export const pct = (sorted, q) => sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] : 0;

/**
 * The built coordinator (DIST/coordinator/main.js) as its own process, so that its CPU and
 * memory can be read from /proc. `stdio` defaults to its stderr on ours.
 */
export function startCoordinator({ dist, port, args = [], env = {}, stdio = ['ignore', 'ignore', 'inherit'] }) {
  return spawn(process.execPath, [join(dist, 'coordinator/main.js'), 'serve', '--listen', `127.0.0.1:${port}`, '--router-listen', '127.0.0.1:0', ...args], {
    env: { ...process.env, SLIPWAY_COORDINATOR_TOKEN: TOKEN, SLIPWAY_API_TOKEN: API_TOKEN, SLIPWAY_LOG_LEVEL: 'warn', ...env }, stdio,
  });
}

/** SIGTERM, then SIGKILL if it has not exited within `ms`. */
export async function stopProcess(child, ms = 5_000) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  if (await Promise.race([exited.then(() => true), sleep(ms).then(() => false)])) return;
  child.kill('SIGKILL');
  await Promise.race([exited, sleep(2_000)]);
}

/**
 * AGENTS simulated agents in WORKERS processes, all dialling `urls` (one URL: the session's
 * `url`; several: its `urls`, tried in turn). What the workers report every 250 ms is kept
 * here: how many agents are ready, and on which URL; every dial with its time and URL.
 * `onSpawn(child)` sees each worker (the PostgreSQL driver writes their pids for its trap).
 */
export function startFleet({ dist, urls, agents, workers, rate = START_RATE, onSpawn = () => undefined }) {
  const ready = new Array(workers).fill(0);
  const readyOn = Array.from({ length: workers }, () => new Array(urls.length).fill(0));
  const dials = [];
  const reports = new Map();
  const children = [];
  const per = Math.ceil(agents / workers);
  for (let w = 0; w < workers; w++) {
    const count = Math.min(per, agents - w * per);
    const child = fork(join(import.meta.dirname, 'fleet-agents.mjs'), [dist, urls.join(','), TOKEN, String(w * per), String(count), String(rate / workers)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.on('message', (m) => {
      if (m.kind === 'report') { reports.get(w)?.(m); return; }
      ready[w] = m.ready; readyOn[w] = m.readyOn;
      for (let i = 0; i < m.dials.length; i++) dials.push({ at: m.dials[i], url: m.dialUrls[i] });
    });
    children.push(child);
    onSpawn(child);
  }
  return {
    children,
    /** Agents whose link is ready (on any URL, or on urls[i]). */
    ready: (i) => (i === undefined ? ready : readyOn.map((r) => r[i])).reduce((a, b) => a + b, 0),
    allNoticed: () => ready.every((r) => r === 0),
    /** Dial times since `t` (Date.now()), of every URL or of urls[i]. */
    dialsSince: (t, i) => dials.filter((d) => d.at >= t && (i === undefined || d.url === i)).map((d) => d.at),
    /** What each worker's agents were told and hold (fleet-agents.mjs, 'report'), merged. */
    async report() {
      const parts = await Promise.all(children.map((c, w) => Promise.race([
        new Promise((r) => { reports.set(w, r); c.send('report'); }),
        sleep(10_000).then(() => { throw new Error(`worker ${w} did not report within 10 s`); }),
      ])));
      return {
        starts: parts.flatMap((p) => p.starts), stops: parts.flatMap((p) => p.stops), held: parts.flatMap((p) => p.held),
        welcomeStarts: parts.flatMap((p) => p.welcomeStarts), unlisted: parts.flatMap((p) => p.unlisted),
      };
    },
    async stop() {
      for (const c of children) if (c.connected) c.send('stop');
      await Promise.race([Promise.all(children.map((c) => (c.exitCode !== null ? undefined : new Promise((r) => c.once('exit', r))))), sleep(10_000)]);
      for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    },
    kill() { for (const c of children) { try { c.kill('SIGKILL'); } catch { /* gone */ } } },
  };
}

/** 100 formations of 5 dynos through the API; the coordinator's own placement timer from
 * /healthz, and the PUT round trips (which include waiting for the store). */
export async function runPlacement(api) {
  const rtts = [];
  for (let i = 0; i < 100; i++) {
    const body = { quantity: 5, size: 'standard-1x', command: 'web', slug: { url: 'http://127.0.0.1:1/s.tgz', sha256: 'a'.repeat(64) } };
    const a = performance.now();
    const r = await http('PUT', `${api}/apps/app-${String(i).padStart(3, '0')}/formation/web`, body);
    rtts.push(performance.now() - a);
    if (r.status !== 200) throw new Error(`formation ${i}: ${r.status} ${r.body}`);
  }
  const health = JSON.parse((await http('GET', `${api}/healthz`)).body);
  rtts.sort((a, b) => a - b);
  return { placement: health.placement, rttP50: pct(rtts, 0.5), rttP99: pct(rtts, 0.99) };
}
