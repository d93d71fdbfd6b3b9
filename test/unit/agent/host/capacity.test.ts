import t from 'tap';
import { buildCapacity, allocatableBytes, MAX_REPORTED_SLUGS } from '../../../../agent/host/capacity.js';

t.test('allocatable is total minus the reserve, never negative', async (t) => {
  t.equal(allocatableBytes(8e9, 1e9), 7e9);
  t.equal(allocatableBytes(1e9, 2e9), 0);
});

t.test('the report carries the slug cache, bounded, without per-slug details beyond digest and size', async (t) => {
  const slugs = Array.from({ length: MAX_REPORTED_SLUGS + 5 }, (_, i) => ({ sha256: i.toString(16).padStart(64, '0'), bytes: i, lastUsed: new Date(0).toISOString(), inUse: false }));
  const c = buildCapacity({
    memory: { totalBytes: 8e9, usedBytes: 1e9 }, reservedBytes: 1e9, committedBytes: 5e8, dynoCount: 1,
    slugCache: { entries: slugs.length, bytes: 123, budgetBytes: 1e10, freeBytes: 5e10, slugs }, accepting: true,
  });
  t.equal(c.memory.allocatableBytes, 7e9);
  t.equal(c.slugCache.slugs.length, MAX_REPORTED_SLUGS);
  t.same(c.slugCache.slugs[0], { sha256: '0'.repeat(64), bytes: 0 });
  t.equal(c.slugCache.freeBytes, 5e10);
});
