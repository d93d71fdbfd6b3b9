// The slug cache beyond one download: retries, budgets, disk limits, eviction, pinning,
// mounted slugs, fetch by URL alone. Real HTTP server, real files, a real overlay mount.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import path from 'node:path';
import { startServer } from './fixtures/server.js';
import { storeFixture } from './fixtures/store.js';
import { GOOD_ENTRIES, rawEntry, sha256, tgz } from './fixtures/tarball.js';
import { gzipSync } from 'node:zlib';
import { Header } from 'tar';

const good = tgz(GOOD_ENTRIES);
const goodSha = sha256(good);
const fastRetry = { attempts: 5, baseDelayMs: 5, maxDelayMs: 20 };

function recordingSleep() {
  const delays: number[] = [];
  return { delays, sleep: async (ms: number) => { delays.push(ms); } };
}

t.test('503 with Retry-After is retried after the time the server asked for, then succeeds', async (t) => {
  const srv = await startServer(t, { '/s.tgz': { sequence: [{ status: 503, retryAfter: '2' }, { status: 502 }, { body: good }] } });
  const { delays, sleep } = recordingSleep();
  const fx = await storeFixture(t, { retry: fastRetry, sleep });
  const e = await fx.store.ensure({ url: `${srv.base}/s.tgz`, sha256: goodSha });
  t.equal(e.cached, false);
  t.equal(srv.count('/s.tgz'), 3);
  t.equal(delays[0], 2000, 'Retry-After: 2 was honoured');
  t.ok(delays[1]! >= 5 && delays[1]! <= 20, 'then the normal backoff');
  t.same(await fx.storeNames(), [goodSha, `${goodSha}.json`], 'no staging dir of the failed attempts is left');
});

t.test('a connection cut mid-body restarts the download cleanly', async (t) => {
  const srv = await startServer(t, { '/s.tgz': { sequence: [{ cut: good, bytes: Math.floor(good.length / 2) }, { body: good }] } });
  const fx = await storeFixture(t, { retry: fastRetry, sleep: async () => {} });
  const e = await fx.store.ensure({ url: `${srv.base}/s.tgz`, sha256: goodSha });
  t.equal(e.files, 4);
  t.equal(srv.count('/s.tgz'), 2);
});

t.test('no retry on 404, 403, 400 or a checksum mismatch; retries are bounded', async (t) => {
  const srv = await startServer(t, { '/404': { status: 404 }, '/403': { status: 403 }, '/400': { status: 400 }, '/bad.tgz': { body: good }, '/down': { status: 500 } });
  const fx = await storeFixture(t, { retry: fastRetry, sleep: async () => {} });
  await t.rejects(fx.store.ensure({ url: `${srv.base}/404`, sha256: goodSha }), { code: 'SLUG_NOT_FOUND' });
  await t.rejects(fx.store.ensure({ url: `${srv.base}/403`, sha256: goodSha }), { code: 'SLUG_FORBIDDEN' });
  await t.rejects(fx.store.ensure({ url: `${srv.base}/400`, sha256: goodSha }), { code: 'SLUG_FETCH_FAILED', retryable: false });
  await t.rejects(fx.store.ensure({ url: `${srv.base}/bad.tgz`, sha256: 'f'.repeat(64) }), { code: 'SLUG_CHECKSUM_MISMATCH' });
  for (const p of ['/404', '/403', '/400', '/bad.tgz']) t.equal(srv.count(p), 1, `${p} asked once`);
  await t.rejects(fx.store.ensure({ url: `${srv.base}/down`, sha256: goodSha }), { code: 'SLUG_FETCH_FAILED', retryable: true });
  t.equal(srv.count('/down'), 5, 'a failing server is asked attempts times, no more');
  t.same(await fx.storeNames(), []);
});

t.test('budgets: a header claiming a huge file, too many entries, too deep a tree', async (t) => {
  // The header says 40 GB but no data follows: the budget must refuse at the header,
  // before tar notices the archive is short.
  const bombHeader = Buffer.alloc(512);
  new Header({ path: './app/zeros', type: 'File', mode: 0o644, size: 40 * 1024 ** 3, mtime: new Date(0) }).encode(bombHeader, 0);
  const bomb = gzipSync(Buffer.concat([rawEntry({ path: './app/', type: 'Directory' }), bombHeader]));
  const many = tgz([{ path: './app/', type: 'Directory' }, ...Array.from({ length: 30 }, (_, i) => ({ path: `./app/f${i}`, body: 'x' }))]);
  const deep = tgz([{ path: './app/', type: 'Directory' }, { path: `./app/${Array.from({ length: 12 }, (_, i) => `d${i}`).join('/')}/f`, body: 'x' }]);
  const srv = await startServer(t, { '/bomb': { body: bomb }, '/many': { body: many }, '/deep': { body: deep } });
  const fx = await storeFixture(t, { limits: { maxCompressedBytes: 1024 ** 3, maxUnpackedBytes: 2 * 1024 ** 3, maxExpansionRatio: 100, maxEntries: 20, maxDepth: 8, maxPathBytes: 4096 } });
  const before = fx.tree();
  await t.rejects(fx.store.ensure({ url: `${srv.base}/bomb`, sha256: sha256(bomb) }), { code: 'SLUG_TOO_LARGE', message: /unpacks to more than|expands more/ });
  await t.rejects(fx.store.ensure({ url: `${srv.base}/many`, sha256: sha256(many) }), { code: 'SLUG_TOO_LARGE', message: /entries/ });
  await t.rejects(fx.store.ensure({ url: `${srv.base}/deep`, sha256: sha256(deep) }), { code: 'SLUG_TOO_LARGE', message: /deeper/ });
  t.same(fx.tree(), before, 'nothing was written');
});

t.test('a Content-Length over the compressed cap is refused before any byte is extracted', async (t) => {
  const srv = await startServer(t, { '/s.tgz': { body: good } });
  const fx = await storeFixture(t, { limits: { maxCompressedBytes: 100, maxUnpackedBytes: 1e9, maxExpansionRatio: 100, maxEntries: 100, maxDepth: 8, maxPathBytes: 4096 } });
  await t.rejects(fx.store.ensure({ url: `${srv.base}/s.tgz`, sha256: goodSha }), { code: 'SLUG_TOO_LARGE', message: /compressed/ });
  t.same(await fx.storeNames(), []);
});

t.test('the free-space floor: a slug that would cross it is refused whole', async (t) => {
  const srv = await startServer(t, { '/s.tgz': { body: good } });
  const fx = await storeFixture(t);
  const st = await statfs(fx.dir);
  const free = st.bavail * st.bsize;
  const store = fx.makeStore({ cache: { budgetBytes: 1e15, floorBytes: free + 1024 ** 4 } });
  await t.rejects(store.ensure({ url: `${srv.base}/s.tgz`, sha256: goodSha }), { code: 'SLUG_DISK_FULL', retryable: true });
  t.same(await fx.storeNames(), []);
  t.equal(srv.count('/s.tgz'), 0, 'refused before downloading');
});

function slugOf(n: number, kb: number) {
  const body = tgz([{ path: './app/', type: 'Directory' }, { path: './app/blob', body: Buffer.alloc(kb * 1024, n) }]);
  return { body, sha: sha256(body) };
}

t.test('over budget: least recently used and unpinned slugs are evicted first', async (t) => {
  const s = [1, 2, 3, 4].map((n) => slugOf(n, 100));
  const srv = await startServer(t, Object.fromEntries(s.map((x, i) => [`/s${i}`, { body: x.body }])));
  const fx = await storeFixture(t);
  const store = fx.makeStore({ cache: { budgetBytes: 250 * 1024, floorBytes: 0 } });
  await store.init();
  const url = (i: number) => ({ url: `${srv.base}/s${i}`, sha256: s[i]!.sha });
  await store.ensure(url(0), { pin: 'web.1' });
  await new Promise((r) => setTimeout(r, 5));
  await store.ensure(url(1));
  await new Promise((r) => setTimeout(r, 5));
  await store.ensure(url(2));
  t.equal(store.has(s[0]!.sha), true, 'pinned slug kept although least recently used');
  t.equal(store.has(s[1]!.sha), false, 'the least recently used unpinned slug went');
  store.unpin(s[0]!.sha, 'web.1');
  await store.ensure(url(3));
  t.equal(store.has(s[0]!.sha), false, 'unpinned, it is evicted in its turn');
  t.same((await store.usage()).slugs.map((x) => x.sha256), [s[3]!.sha, s[2]!.sha], 'most recently used first');
});

t.test('a slug mounted by a dyno is never evicted, even by a store that did not pin it', async (t) => {
  const s0 = slugOf(7, 50);
  const srv = await startServer(t, { '/s0': { body: s0.body } });
  const fx = await storeFixture(t);
  const e = await fx.store.ensure({ url: `${srv.base}/s0`, sha256: s0.sha });
  const mnt = path.join(fx.root, 'mnt');
  for (const d of ['upper', 'work', 'mnt']) mkdirSync(path.join(fx.root, d));
  execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${e.path},upperdir=${fx.root}/upper,workdir=${fx.root}/work`, mnt]);
  t.teardown(() => { try { execFileSync('umount', [mnt]); } catch { /* already */ } });
  // A second store over the same dir: an agent after a restart, or `slipway-agent slug gc`.
  const other = fx.makeStore({ cache: { budgetBytes: 0, floorBytes: 0 } });
  await other.init();
  // A slug still being flushed is spared as well (durability.ts): let that finish first.
  await other.settled();
  t.same(await other.gc(), { evicted: [], fits: false }, 'the mounted slug stays although the budget is 0');
  t.equal((await other.usage()).slugs[0]?.inUse, true);
  execFileSync('umount', [mnt]);
  t.same((await other.gc()).evicted, [s0.sha], 'once unmounted it can go');
});

t.test('committed slugs are read-only; a restart finds them and their last use', async (t) => {
  const srv = await startServer(t, { '/s.tgz': { body: good } });
  const fx = await storeFixture(t);
  const e = await fx.store.ensure({ url: `${srv.base}/s.tgz`, sha256: goodSha });
  t.equal(statSync(e.path).mode & 0o777, 0o555);
  const before = (await fx.store.usage()).slugs[0]!.lastUsed;
  const again = fx.makeStore();
  await again.init();
  const after = await again.ensure({ url: `${srv.base}/s.tgz`, sha256: goodSha });
  t.equal(after.cached, true);
  t.equal(srv.count('/s.tgz'), 1);
  t.ok((await again.usage()).slugs[0]!.lastUsed >= before);
});

t.test('fetch by URL alone files the slug under the digest it has', async (t) => {
  const srv = await startServer(t, { '/s.tgz': { body: good } });
  const fx = await storeFixture(t);
  const e = await fx.store.ensure({ url: `${srv.base}/s.tgz` });
  t.equal(e.sha256, goodSha);
  t.equal(e.cached, false);
  const again = await fx.store.ensure({ url: `${srv.base}/s.tgz` });
  t.equal(again.cached, true, 'the second download found its digest already cached');
  t.same(await fx.storeNames(), [goodSha, `${goodSha}.json`]);
});
