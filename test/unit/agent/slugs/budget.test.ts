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

t.test('unpacked size is judged from headers, before data is written', async (t) => {
  const big = new SlugBudget({ ...limits, maxExpansionRatio: 1000 });
  t.equal(big.onEntry('app/fits', 10 * RATIO_GRACE_BYTES), undefined);
  t.match(big.onEntry('app/huge', 1), { code: 'SLUG_TOO_LARGE', message: /unpacks to more than/ });
});

t.test('the expansion bound: the tar stream never passes ratio x max(compressed, 1 MiB grace)', async (t) => {
  t.equal(RATIO_GRACE_BYTES, 1024 * 1024, 'the grace the README states');
  const b = new SlugBudget(limits);
  t.equal(b.onPlain(4 * RATIO_GRACE_BYTES), undefined, 'the grace lets a small slug expand');
  t.match(b.onPlain(1), { code: 'SLUG_TOO_LARGE', message: /expands more than 4x \(4194305 bytes of tar from 0 compressed/ });

  const c = 3 * RATIO_GRACE_BYTES;
  const wide = new SlugBudget({ ...limits, maxCompressedBytes: 10 * c });
  t.equal(wide.onCompressed(c), undefined);
  t.equal(wide.onPlain(4 * c), undefined, 'exactly the ratio past the grace');
  t.match(wide.onPlain(1), { message: /expands more than 4x/ }, 'one byte more');
});

t.test('a 1000x bomb is refused by the stream bound with 100x its grace written at most', async (t) => {
  const b = new SlugBudget({ ...limits, maxCompressedBytes: 1024 ** 3, maxUnpackedBytes: 1024 ** 4, maxExpansionRatio: 100 });
  const chunk = 256 * 1024;
  let passed = 0;
  let verdict;
  // Zeros through gzip -9: 256 KiB out of gunzip for every ~256 compressed bytes (1024x).
  for (let i = 0; i < 4096 && !verdict; i++) {
    verdict = b.onCompressed(chunk / 1024) ?? b.onPlain(chunk);
    if (!verdict) passed += chunk;
  }
  t.match(verdict, { code: 'SLUG_TOO_LARGE', message: /expands more than 100x/ });
  t.equal(passed, 100 * RATIO_GRACE_BYTES, 'what went on to tar: 100 MiB, not the 1 GiB of the bomb');
});

t.test('with the compressed size known, the headers are held to the bound before any data', async (t) => {
  const declared = 2 * RATIO_GRACE_BYTES;
  const b = new SlugBudget(limits, declared);
  t.equal(b.onEntry('app/a', 4 * declared), undefined, 'exactly 4x the declared size');
  t.match(b.onEntry('app/b', 1), { code: 'SLUG_TOO_LARGE', message: /expands more than 4x \(its headers declare 8388609 bytes, its size is 2097152 compressed\)/ });

  const small = new SlugBudget(limits, 1000);
  t.equal(small.onEntry('app/log', 4 * RATIO_GRACE_BYTES), undefined, 'a tiny slug still has the grace');
  t.match(small.onEntry('app/more', 1), { message: /expands more than 4x/ });

  const under = new SlugBudget({ ...limits, maxCompressedBytes: 100 * RATIO_GRACE_BYTES, maxUnpackedBytes: 100 * RATIO_GRACE_BYTES }, RATIO_GRACE_BYTES);
  t.equal(under.onCompressed(3 * RATIO_GRACE_BYTES), undefined);
  t.equal(under.onEntry('app/x', 12 * RATIO_GRACE_BYTES), undefined, 'a source that sends more than it declared is judged on what it sent');
});

t.test('without a known size, a large file early in the slug is not refused at its header', async (t) => {
  // A node binary first in the archive, before its compressed bytes have been read: judged
  // on its bytes as they come (onPlain), not on what its header promises.
  const b = new SlugBudget({ ...limits, maxCompressedBytes: 1024 ** 3, maxUnpackedBytes: 1024 ** 3, maxExpansionRatio: 100, maxDepth: 8 });
  t.equal(b.onCompressed(64 * 1024), undefined);
  t.equal(b.onEntry('app/.heroku/node/bin/node', 120 * 1024 * 1024), undefined);
});
