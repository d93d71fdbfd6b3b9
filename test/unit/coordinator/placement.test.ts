// Placement's rule (coordinator/placement.ts), and the rule as the coordinator applies it: zones
// from the agents' identities (coordinator/agent-registry.ts), a formation's dynos counted per
// app and process type (coordinator/formation-service.ts). Correctness only: the time a choice
// takes is scripts/bench/placement.sh's to measure.
import t from 'tap';
import type { Capacity, DynoStatus, Result } from '../../../shared/protocol.js';
import type { CommandBody } from '../../../shared/coordinator-sdk/index.js';
import { AgentRegistry } from '../../../coordinator/agent-registry.js';
import { DynoTable } from '../../../coordinator/dyno-table.js';
import { FormationService } from '../../../coordinator/formation-service.js';
import { RouteTable } from '../../../coordinator/route-table.js';
import { createRootLogger } from '../../../shared/log.js';
import { chooseAgent, freeBytes, MIB, placeDynos, placementZone, Spread, type AgentPlacementView } from '../../../coordinator/placement.js';

const agent = (id: string, freeMb: number, extra: Partial<AgentPlacementView> = {}): AgentPlacementView => ({
  id, connected: true, accepting: true, allocatableBytes: 8192 * MIB, committedBytes: (8192 - freeMb) * MIB, reservedBytes: 0, ...extra,
});

t.test('the agent with the most free allocatable memory wins', async (t) => {
  const chosen = chooseAgent([agent('a', 1024), agent('b', 4096), agent('c', 2048)], 512);
  t.equal(chosen?.id, 'b');
});

t.test('ties go to the smallest agent id, whatever the input order', async (t) => {
  t.equal(chooseAgent([agent('zeta', 2048), agent('alpha', 2048), agent('mid', 2048)], 512)?.id, 'alpha');
});

t.test('an agent whose free memory is below the quota is skipped; an exact fit is taken', async (t) => {
  t.equal(chooseAgent([agent('a', 511), agent('b', 512)], 512)?.id, 'b');
  t.equal(chooseAgent([agent('a', 511)], 512), undefined);
});

t.test('disconnected, draining and excluded agents are never chosen', async (t) => {
  const agents = [agent('a', 8000, { connected: false }), agent('b', 7000, { accepting: false }), agent('c', 6000), agent('d', 1000)];
  t.equal(chooseAgent(agents, 512)?.id, 'c');
  t.equal(chooseAgent(agents, 512, new Set(['c']))?.id, 'd');
  t.equal(chooseAgent(agents, 512, new Set(['c', 'd'])), undefined);
});

t.test('no agents: nothing to place on', async (t) => {
  t.equal(chooseAgent([], 16), undefined);
});

t.test("the coordinator's own reservations count against free memory", async (t) => {
  const chosen = chooseAgent([agent('a', 4096, { reservedBytes: 3584 * MIB }), agent('b', 1024)], 512);
  t.equal(chosen?.id, 'b');
});

t.test('placing dynos back to back accounts for the ones before: memory and spread', async (t) => {
  // One agent with room for exactly one: the second does not fit.
  t.same(placeDynos([agent('a', 1024)], [1024, 1024]), ['a', undefined]);
  // Two equal agents: the second dyno goes to the other one.
  t.same(placeDynos([agent('a', 1024), agent('b', 1024)], [512, 512]), ['a', 'b']);
  // 1.5 GB vs 1 GB: the first goes to a (more free); the second to b, which has none of the
  // formation's dynos yet; the third to a again (one each, and a has more left).
  t.same(placeDynos([agent('b', 1024), agent('a', 1536)], [512, 512, 512]), ['a', 'b', 'a']);
});

t.test('placeDynos changes neither the views nor the spread it was given', async (t) => {
  const views = [agent('a', 1024)];
  const spread = new Spread(['a']);
  placeDynos(views, [512], spread);
  t.equal(views[0]?.reservedBytes, 0);
  t.equal(spread.on('a'), 1);
  t.equal(spread.size, 1);
});

t.test('EC2 notices: an interrupted host gets nothing; a rebalance host only when nothing else fits', async (t) => {
  const agents = [agent('a', 8000, { interrupted: true }), agent('b', 7000, { rebalance: true }), agent('c', 1000)];
  t.equal(chooseAgent(agents, 512)?.id, 'c', 'the host without a notice wins over more free memory elsewhere');
  t.equal(chooseAgent(agents, 2048)?.id, 'b', 'a rebalance host still takes what fits nowhere else');
  t.equal(chooseAgent(agents, 7500), undefined, 'an interrupted host takes nothing, even when it alone fits');
  t.same(placeDynos(agents, [512, 512, 512]), ['c', 'b', 'b'], 'placement spills onto the rebalance host once the others are full');
});

t.test("a host's zone: its own, else its EC2 availability zone, else none", async (t) => {
  const ec2 = { instanceId: 'i-1', instanceType: 'm7g.large', availabilityZone: 'eu-west-1b', region: 'eu-west-1', privateIp: '10.0.0.1' };
  t.equal(placementZone({ zone: 'rack-3', ec2 }), 'rack-3', 'a configured zone wins over EC2');
  t.equal(placementZone({ ec2 }), 'eu-west-1b', 'an agent that sends no zone: its EC2 identity');
  t.equal(placementZone({}), undefined);
});

t.test('the zone with the fewest of the formation\'s dynos wins over free memory', async (t) => {
  const agents = [agent('a1', 8000, { zone: 'a' }), agent('b1', 1000, { zone: 'b' }), agent('c1', 2000, { zone: 'c' })];
  t.equal(chooseAgent(agents, 512, undefined, new Spread(['a1']))?.id, 'c1', 'zone a has one; b and c none: c has more free');
  t.equal(chooseAgent(agents, 512, undefined, new Spread(['a1', 'c1']))?.id, 'b1', 'only zone b has none');
  t.equal(chooseAgent(agents, 1500, undefined, new Spread(['a1', 'a1', 'c1']))?.id, 'c1', 'zone b does not fit: among the zones that fit, the fewest');
});

t.test('a zone counts the dynos of hosts that take no more (full, disconnected, interrupted)', async (t) => {
  const agents = [
    agent('a-full', 100, { zone: 'a' }), agent('a-gone', 8000, { zone: 'a', connected: false }), agent('a-spot', 8000, { zone: 'a', interrupted: true }), agent('a-free', 8000, { zone: 'a' }),
    agent('b-small', 1000, { zone: 'b' }),
  ];
  const spread = new Spread(['a-full', 'a-gone', 'a-spot']);
  t.equal(chooseAgent(agents, 512, undefined, spread)?.id, 'b-small', 'zone a has three already; its empty host does not make it the emptiest zone');
});

t.test('within a zone, the host with the fewest of the formation\'s dynos; then free memory; then id', async (t) => {
  const agents = [agent('x', 8000, { zone: 'a' }), agent('y', 2000, { zone: 'a' }), agent('z', 2000, { zone: 'a' }), agent('w', 8000, { zone: 'b' })];
  t.equal(chooseAgent(agents, 512, undefined, new Spread(['x', 'w']))?.id, 'y', 'zones tie at one; y and z have none, tie on memory, y by id');
  t.equal(chooseAgent(agents, 512, undefined, new Spread(['x', 'y', 'w', 'w']))?.id, 'z');
});

t.test('zoneless hosts are one zone, apart from named ones', async (t) => {
  const agents = [agent('n1', 8000), agent('n2', 8000), agent('a1', 1000, { zone: 'a' })];
  t.equal(chooseAgent(agents, 512, undefined, new Spread(['n1']))?.id, 'a1', 'n2 has none, but its zone (no zone) has one');
  t.same(placeDynos([agent('n1', 4096), agent('n2', 4096), agent('n3', 4096)], [512, 512, 512, 512]), ['n1', 'n2', 'n3', 'n1'], 'a fleet without zones spreads across hosts');
});

t.test('a rebalance host stays the last resort, even alone in the emptiest zone', async (t) => {
  const agents = [agent('a1', 8000, { zone: 'a' }), agent('b1', 8000, { zone: 'b', rebalance: true })];
  t.equal(chooseAgent(agents, 512, undefined, new Spread(['a1', 'a1']))?.id, 'a1');
  t.equal(chooseAgent(agents, 512, new Set(['a1']), new Spread(['a1', 'a1']))?.id, 'b1', 'taken when nothing else fits');
  t.equal(chooseAgent([agent('a1', 8000, { zone: 'a' }), agent('b1', 8000, { zone: 'b', interrupted: true })], 512, undefined, new Spread(['a1']))?.id, 'a1', 'an interrupted host never');
});

t.test('placing a formation over three zones of two hosts each: one per host, zones in turn', async (t) => {
  const agents = ['a', 'b', 'c'].flatMap((z) => [agent(`${z}1`, 4096, { zone: z }), agent(`${z}2`, 4096, { zone: z })]);
  const placed = placeDynos(agents, Array.from({ length: 6 }, () => 512));
  t.same(placed, ['a1', 'b1', 'c1', 'a2', 'b2', 'c2']);
  // A formation that already has two dynos in zone a: the next four go to b and c first.
  t.same(placeDynos(agents, [512, 512, 512, 512], new Spread(['a1', 'a2'])), ['b1', 'c1', 'b2', 'c2']);
});

t.test('Spread: counts per host; removing what is not there is a no-op', async (t) => {
  const s = new Spread(['a', 'a', 'b']);
  t.same([s.on('a'), s.on('b'), s.on('c'), s.size], [2, 1, 0, 3]);
  s.remove('a');
  s.remove('c');
  t.same([s.on('a'), s.size], [1, 2]);
  s.remove('a');
  s.remove('a');
  t.same([s.on('a'), s.size], [0, 1]);
  const copy = s.copy();
  copy.add('b');
  t.same([s.on('b'), copy.on('b')], [1, 2], 'a copy is apart from its source');
});

// The fast path (zone totals once, then one pass) against the rule written out the slow way:
// count each agent's and each zone's dynos from the dyno list, sort every fitting agent by the
// rule's key, take the first. Seeded, so a failure repeats.
t.test('chooseAgent agrees with the rule computed naively, over random fleets', async (t) => {
  let seed = 15;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const zones = [undefined, 'z1', 'z2', 'z3'];
  let mismatches = 0;
  for (let round = 0; round < 300; round++) {
    const agents = Array.from({ length: 1 + rand(12) }, (_, i) => agent(`ag-${String(rand(50)).padStart(2, '0')}-${i}`, rand(4) * 512, {
      zone: zones[rand(zones.length)], connected: rand(8) > 0, accepting: rand(8) > 0, interrupted: rand(10) === 0, rebalance: rand(5) === 0,
    }));
    const dynoHosts = Array.from({ length: rand(20) }, () => agents[rand(agents.length)]!.id);
    const exclude = new Set(agents.filter(() => rand(10) === 0).map((a) => a.id));
    const memoryMb = 256 * (1 + rand(4));
    const naive = naiveChoice(agents, memoryMb, exclude, dynoHosts);
    const fast = chooseAgent(agents, memoryMb, exclude, new Spread(dynoHosts))?.id;
    if (fast !== naive) mismatches++;
  }
  t.equal(mismatches, 0);
});

function naiveChoice(agents: AgentPlacementView[], memoryMb: number, exclude: Set<string>, dynoHosts: string[]): string | undefined {
  const zoneOf = (a: AgentPlacementView) => a.zone ?? '';
  const onHost = (a: AgentPlacementView) => dynoHosts.filter((h) => h === a.id).length;
  const inZone = (a: AgentPlacementView) => agents.filter((b) => zoneOf(b) === zoneOf(a)).reduce((n, b) => n + onHost(b), 0);
  const fitting = agents.filter((a) => a.connected && a.accepting && !a.interrupted && !exclude.has(a.id) && freeBytes(a) >= memoryMb * MIB);
  const key = (a: AgentPlacementView) => [a.rebalance ? 1 : 0, inZone(a), onHost(a), -freeBytes(a)];
  fitting.sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i]! - kb[i]!;
    return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  });
  return fitting[0]?.id;
}

t.test('through the coordinator: zones from the hellos, spread per process type', async (t) => {
  const capacity = (allocatableMb: number): Capacity => ({
    memory: { totalBytes: allocatableMb * MIB, reservedBytes: 0, allocatableBytes: allocatableMb * MIB, committedBytes: 0, usedBytes: 0 },
    cpu: { cores: 2, load1: 0 }, dynoCount: 0, slugCache: { entries: 0, bytes: 0, budgetBytes: 0, freeBytes: 0, slugs: [] }, accepting: true,
  });
  const host = { hostname: 'h', address: '10.0.0.1', version: '0.1.0', runtime: 'runc' };
  const ec2 = { instanceId: 'i-2', instanceType: 'm7g.large', availabilityZone: 'eu-1a', region: 'eu-1', privateIp: '10.0.0.2' };
  const registry = new AgentRegistry();
  registry.attach({ id: 'a1', ...host, zone: 'eu-1a' }, capacity(8192));
  registry.attach({ id: 'a2', ...host, ec2 }, capacity(8192)); // no zone of its own: EC2's
  registry.attach({ id: 'b1', ...host, zone: 'eu-1b' }, capacity(4096));
  const dynos = new DynoTable(new RouteTable(), () => '10.0.0.1');
  let n = 0;
  const commander = {
    async sendCommand(_agentId: string, command: CommandBody): Promise<Result> {
      const id = `c${++n}`;
      if (command.type !== 'start_dyno') return { type: 'result', id, ok: true };
      const d = command.dyno;
      const status: DynoStatus = { id: d.id, app: d.app, type: d.type, name: d.name, state: 'starting', memoryMb: d.size.memoryMb, since: new Date().toISOString() };
      return { type: 'result', id, ok: true, dyno: status };
    },
  };
  const formations = new FormationService({ dynos, registry, commander, log: createRootLogger({ level: 'silent' }) });
  const request = (type: string, quantity: number) => ({
    app: 'shop', type, quantity, size: { name: 'standard-1x', memoryMb: 512, cpuShares: 1024, pidsLimit: 256 },
    command: 'httpd', slug: { url: 'http://127.0.0.1:1/s.tgz', sha256: 'a'.repeat(64) }, env: {}, stack: 'busybox',
  });
  const hosts = async (type: string, quantity: number) => (await formations.apply(request(type, quantity))).dynos.map((d) => `${d.name}@${d.agentId}`).sort();
  t.same(await hosts('web', 1), ['web.1@a1'], 'the first dyno: most free memory (a1 and a2 tie; a1 by id)');
  t.same(await hosts('web', 2), ['web.1@a1', 'web.2@b1'], "the second: the other zone, though b1 has less room (a2 is in a1's zone by its EC2 identity)");
  t.same(await hosts('web', 3), ['web.1@a1', 'web.2@b1', 'web.3@a2'], 'the third: zones tie; the host of eu-1a without one');
  t.same(await hosts('worker', 1), ['worker.1@a1'], "a worker spreads apart from web: web's dynos do not push it off a1 (most free, id)");
});
