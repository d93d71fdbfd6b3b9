import t from 'tap';
import { SlugBudget, RATIO_GRACE_BYTES, type SlugLimits } from '../../../../agent/slugs/budget.js';

const limits: SlugLimits = { maxCompressedBytes: 1000, maxUnpackedBytes: 10 * RATIO_GRACE_BYTES, maxExpansionRatio: 4, maxEntries: 3, maxDepth: 3, maxPathBytes: 64 };

t.test('compressed bytes are capped', async (t) => {
  const b = new SlugBudget(limits);
  t.equal(b.onCompressed(1000), undefined);
  t.match(b.onCompressed(1), { code: 'SLUG_TOO_LARGE', message: /compressed/ });
});

t.test('entry count, depth, path and name length', async (t) => {
  const b = new SlugBudget(limits);
  t.equal(b.onEntry('app', 0), undefined);
  t.equal(b.onEntry('app/a/b/c', 0), undefined, 'depth 3 is allowed');
  t.match(b.onEntry('app/a/b/c/d', 0), { code: 'SLUG_TOO_LARGE', message: /deeper/ });
  t.match(new SlugBudget(limits).onEntry(`app/${'x'.repeat(70)}`, 0), { message: /path longer/ });
  t.match(new SlugBudget({ ...limits, maxPathBytes: 4096 }).onEntry(`app/${'x'.repeat(256)}`, 0), { message: /name longer/ });
  const many = new SlugBudget(limits);
  for (let i = 0; i < 3; i++) t.equal(many.onEntry(`app/f${i}`, 0), undefined);
  t.match(many.onEntry('app/f3', 0), { message: /more than 3 entries/ });
});

t.test('unpacked size and expansion ratio are judged from headers, before data is written', async (t) => {
  const b = new SlugBudget(limits);
  t.equal(b.onEntry('app/small', RATIO_GRACE_BYTES), undefined, 'the grace lets a small slug expand');
  t.match(b.onEntry('app/bomb', 4 * RATIO_GRACE_BYTES), { code: 'SLUG_TOO_LARGE', message: /expands more than 4x/ });
  const big = new SlugBudget({ ...limits, maxExpansionRatio: 1000 });
  t.match(big.onEntry('app/huge', 10 * RATIO_GRACE_BYTES + 1), { message: /unpacks to more than/ });
});
