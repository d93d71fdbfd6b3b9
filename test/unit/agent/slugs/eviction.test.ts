import t from 'tap';
import { planEviction, type CachedSlug } from '../../../../agent/slugs/eviction.js';

const slug = (sha256: string, bytes: number, lastUsedMs: number, inUse = false): CachedSlug => ({ sha256, bytes, lastUsedMs, inUse });
const GB = 1024 ** 3;

t.test('nothing is evicted while under budget and above the floor', async (t) => {
  t.same(planEviction([slug('a', GB, 1)], { budgetBytes: 10 * GB, floorBytes: GB }, 5 * GB), { evict: [], fits: true });
});

t.test('over budget: least recently used first, until it fits', async (t) => {
  const plan = planEviction([slug('new', 2 * GB, 30), slug('old', 2 * GB, 10), slug('mid', 2 * GB, 20)], { budgetBytes: 5 * GB, floorBytes: 0 }, 100 * GB);
  t.same(plan, { evict: ['old'], fits: true });
});

t.test('room for a slug about to be written counts against budget and floor', async (t) => {
  const plan = planEviction([slug('a', GB, 1), slug('b', GB, 2)], { budgetBytes: 100 * GB, floorBytes: 2 * GB }, 3 * GB, 2 * GB);
  t.same(plan, { evict: ['a'], fits: true }, 'free 3 GB - need 2 GB is under the 2 GB floor until 1 GB more is freed');
});

t.test('slugs in use are never evicted, even if the room is then not there', async (t) => {
  const plan = planEviction([slug('running', 4 * GB, 1, true), slug('idle', GB, 2)], { budgetBytes: 2 * GB, floorBytes: 0 }, 100 * GB);
  t.same(plan, { evict: ['idle'], fits: false });
});
