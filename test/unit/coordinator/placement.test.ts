import t from 'tap';
import { chooseAgent, MIB, placeDynos, type AgentPlacementView } from '../../../coordinator/placement.js';

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

t.test('placing two dynos back to back accounts for the first', async (t) => {
  // One agent with room for exactly one: the second does not fit.
  t.same(placeDynos([agent('a', 1024)], [1024, 1024]), ['a', undefined]);
  // Two equal agents: the second dyno goes to the other one (spread), not the same one.
  t.same(placeDynos([agent('a', 1024), agent('b', 1024)], [512, 512]), ['a', 'b']);
  // 1.5 GB vs 1 GB: the first goes to a; then both have 1 GB free and the tie goes to a.
  t.same(placeDynos([agent('b', 1024), agent('a', 1536)], [512, 512, 512]), ['a', 'a', 'b']);
});

t.test('placeDynos does not change the views it was given', async (t) => {
  const views = [agent('a', 1024)];
  placeDynos(views, [512]);
  t.equal(views[0]?.reservedBytes, 0);
});

t.test('EC2 notices: an interrupted host gets nothing; a rebalance host only when nothing else fits', async (t) => {
  const agents = [agent('a', 8000, { interrupted: true }), agent('b', 7000, { rebalance: true }), agent('c', 1000)];
  t.equal(chooseAgent(agents, 512)?.id, 'c', 'the host without a notice wins over more free memory elsewhere');
  t.equal(chooseAgent(agents, 2048)?.id, 'b', 'a rebalance host still takes what fits nowhere else');
  t.equal(chooseAgent(agents, 7500), undefined, 'an interrupted host takes nothing, even when it alone fits');
  t.same(placeDynos(agents, [512, 512, 512]), ['c', 'b', 'b'], 'placement spills onto the rebalance host once the others are full');
});
