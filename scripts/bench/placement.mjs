// Driver of scripts/bench/placement.sh; see there. Plain JS over dist/ (or the module named by
// PLACEMENT_MODULE: a placement.js compiled apart, to measure a checkout without building it
// all), so it measures the built chooseAgent exactly as the coordinator calls it.
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

const AGENTS = Number(process.argv[2] ?? 2000);
const DYNOS = Number(process.argv[3] ?? 10_000);
const CHOICES = Number(process.argv[4] ?? 4000);
const ZONES = 3;
const PER_FORMATION = 10; // existing dynos of one app+process type
const NEW_PER_FORMATION = 4; // dynos one formation change places
const WARMUP = 500;
const TARGET_P99_MS = 5; // issue 15
const MIB = 1024 * 1024;

const modulePath = process.env.PLACEMENT_MODULE ? pathToFileURL(resolve(process.env.PLACEMENT_MODULE)).href : new URL('../../dist/coordinator/placement.js', import.meta.url).href;
const { chooseAgent, Spread } = await import(modulePath);

// The rule before issue 15, as the baseline: the most free memory that fits, hosts without a
// rebalance recommendation first, smallest id on a tie; no spread.
function oldChooseAgent(agents, memoryMb, exclude = new Set()) {
  return oldBestFit(agents, memoryMb, exclude, false) ?? oldBestFit(agents, memoryMb, exclude, true);
}
function oldBestFit(agents, memoryMb, exclude, rebalance) {
  const need = memoryMb * MIB;
  let best;
  for (const agent of agents) {
    if (!agent.connected || !agent.accepting || agent.interrupted || (agent.rebalance ?? false) !== rebalance || exclude.has(agent.id)) continue;
    const free = agent.allocatableBytes - agent.committedBytes - agent.reservedBytes;
    if (free < need) continue;
    if (!best) { best = agent; continue; }
    const bestFree = best.allocatableBytes - best.committedBytes - best.reservedBytes;
    if (free > bestFree || (free === bestFree && agent.id < best.id)) best = agent;
  }
  return best;
}

// A seeded generator, so two runs build the same fleet.
let seed = 15;
const rand = (n) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n; };

// The fleet: 8 GB hosts in ZONES zones, the usual few with a notice or a link down; each host
// has a few dynos committed of other apps' (unrelated to the formations below).
const agents = Array.from({ length: AGENTS }, (_, i) => ({
  id: `i-${String(i).padStart(6, '0')}`, connected: rand(100) > 0, accepting: true,
  allocatableBytes: 8192 * MIB, committedBytes: 0, reservedBytes: 0,
  interrupted: rand(200) === 0, rebalance: rand(100) === 0, zone: `eu-west-1${'abc'[i % ZONES]}`,
}));
// The existing dynos: DYNOS of 256 MB in formations of PER_FORMATION, each on a random host,
// as the coordinator's dyno table holds them.
const dynos = [];
for (let i = 0; i < DYNOS; i++) {
  const host = agents[rand(AGENTS)];
  host.committedBytes += 256 * MIB;
  dynos.push({ id: `d${i}`, app: `app-${Math.floor(i / PER_FORMATION)}`, type: 'web', agentId: host.id, desired: 'run' });
}
const formations = Math.ceil(DYNOS / PER_FORMATION);

const pct = (xs, q) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]; };
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
const fmt = (x) => x.toFixed(3);

// Formation changes, one after another, each placing NEW_PER_FORMATION dynos of 512 MB into a
// formation that has PER_FORMATION already: the per-formation count (a scan of every dyno, as
// FormationService's wantedOf does), then each dyno's choice by both rules on the same views,
// in alternating order; the new rule's choice is the one applied (reserved and counted).
const newMs = [];
const oldMs = [];
const countMs = [];
let placed = 0;
let unplaced = 0;
for (let change = 0; placed < WARMUP + CHOICES; change++) {
  const app = `app-${rand(formations)}`;
  let t0 = process.hrtime.bigint();
  const spread = new Spread(dynos.filter((d) => d.app === app && d.type === 'web' && d.desired === 'run').map((d) => d.agentId));
  const countTook = ms(t0);
  if (placed >= WARMUP) countMs.push(countTook);
  for (let k = 0; k < NEW_PER_FORMATION; k++) {
    let chosen;
    let tookNew;
    let tookOld;
    if ((placed + k) % 2 === 0) {
      t0 = process.hrtime.bigint(); chosen = chooseAgent(agents, 512, undefined, spread); tookNew = ms(t0);
      t0 = process.hrtime.bigint(); oldChooseAgent(agents, 512); tookOld = ms(t0);
    } else {
      t0 = process.hrtime.bigint(); oldChooseAgent(agents, 512); tookOld = ms(t0);
      t0 = process.hrtime.bigint(); chosen = chooseAgent(agents, 512, undefined, spread); tookNew = ms(t0);
    }
    if (placed >= WARMUP) { newMs.push(tookNew); oldMs.push(tookOld); }
    placed++;
    if (!chosen) { unplaced++; continue; }
    chosen.reservedBytes += 512 * MIB;
    spread.add(chosen.id);
  }
  // The reports come in: what was reserved is committed (the fleet stays as full as it got).
  for (const a of agents) { a.committedBytes += a.reservedBytes; a.reservedBytes = 0; }
}

// What the rule is for: a fresh formation of 6 on the fleet as it is now, placed by each rule
// (views copied, so neither run changes the fleet): how many zones and hosts its dynos reach.
function fresh(rule, n = 6) {
  const views = agents.map((a) => ({ ...a }));
  const byId = new Map(views.map((v) => [v.id, v]));
  const spread = new Spread();
  const zones = new Map();
  for (let i = 0; i < n; i++) {
    const chosen = rule === 'new' ? chooseAgent(views, 512, undefined, spread) : oldChooseAgent(views, 512);
    if (!chosen) break;
    chosen.reservedBytes += 512 * MIB;
    spread.add(chosen.id);
    zones.set(byId.get(chosen.id).zone, (zones.get(byId.get(chosen.id).zone) ?? 0) + 1);
  }
  return { zones: zones.size, maxInOneZone: Math.max(...zones.values()) };
}

const p50New = pct(newMs, 0.5); const p99New = pct(newMs, 0.99);
const p50Old = pct(oldMs, 0.5); const p99Old = pct(oldMs, 0.99);
const spreadNew = fresh('new'); const spreadOld = fresh('old');
console.log(`placement: ${AGENTS} agents in ${ZONES} zones, ${DYNOS} existing dynos in ${formations} formations; ${newMs.length} choices measured (after ${WARMUP} warm-up), ${unplaced} unplaced`);
console.log(`  chooseAgent, spread rule:   p50 ${fmt(p50New)} ms, p99 ${fmt(p99New)} ms, max ${fmt(Math.max(...newMs))} ms`);
console.log(`  baseline, most free memory: p50 ${fmt(p50Old)} ms, p99 ${fmt(p99Old)} ms, max ${fmt(Math.max(...oldMs))} ms (same run, same views)`);
console.log(`  ratio spread / baseline: p50 ${(p50New / p50Old).toFixed(2)}x, p99 ${(p99New / p99Old).toFixed(2)}x`);
console.log(`  per-formation count (scan of ${DYNOS} dynos + Spread): p50 ${fmt(pct(countMs, 0.5))} ms, p99 ${fmt(pct(countMs, 0.99))} ms, once per formation change`);
console.log(`  a fresh formation of 6: spread rule reaches ${spreadNew.zones} zones (at most ${spreadNew.maxInOneZone} in one), baseline ${spreadOld.zones} zones (at most ${spreadOld.maxInOneZone} in one)`);
console.log(`  target p99 < ${TARGET_P99_MS} ms: ${fmt(p99New)} / ${TARGET_P99_MS} = ${(p99New / TARGET_P99_MS).toFixed(3)}x: ${p99New < TARGET_P99_MS ? 'met' : 'NOT met'}`);
console.log(JSON.stringify({ agents: AGENTS, dynos: DYNOS, choices: newMs.length, spread: { p50Ms: p50New, p99Ms: p99New }, baseline: { p50Ms: p50Old, p99Ms: p99Old }, ratioP50: p50New / p50Old, ratioP99: p99New / p99Old, freshFormation: { spread: spreadNew, baseline: spreadOld } }));
process.exitCode = p99New < TARGET_P99_MS ? 0 : 1;
