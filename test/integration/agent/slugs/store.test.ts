import t from 'tap';
import { lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { c as tarCreate } from 'tar';
import { SlipwayError } from '../../../../shared/errors.js';
import { GOOD_BYTES, GOOD_ENTRIES, GOOD_FILES, sha256, tgz } from './fixtures/tarball.js';
import { startServer } from './fixtures/server.js';
import { OWNER, storeFixture } from './fixtures/store.js';

const good = tgz(GOOD_ENTRIES);
const goodSha = sha256(good);

t.test('a good slug is fetched, extracted under <sha>/app with the agent-chosen owner and safe modes', async (t) => {
  const srv = await startServer(t, { '/good.tgz': { body: good } });
  const fx = await storeFixture(t);
  const entry = await fx.store.ensure({ url: `${srv.base}/good.tgz`, sha256: goodSha });

  t.same(entry, { sha256: goodSha, path: path.join(fx.dir, goodSha), bytes: GOOD_BYTES, files: GOOD_FILES, cached: false });
  t.same(readdirSync(entry.path), ['app'], 'the lower layer holds nothing but app/');
  t.same(await fx.storeNames(), [goodSha, `${goodSha}.json`]);
  const app = path.join(entry.path, 'app');
  t.equal(readFileSync(path.join(app, 'Procfile'), 'utf8'), 'web: ./bin/web\n');
  t.equal(readFileSync(path.join(app, 'README'), 'utf8'), 'no ./ prefix here\n');
  t.equal(readlinkSync(path.join(app, 'lib')), 'bin');

  for (const rel of ['', 'Procfile', 'bin', 'bin/web', '.profile.d', '.profile.d/env.sh', 'lib', 'README']) {
    const st = lstatSync(path.join(app, rel));
    t.same({ rel, uid: st.uid, gid: st.gid }, { rel, ...OWNER }, `owner of app/${rel}`);
  }
  // The process umask applies on top of the policy's mask (0o022 here and under systemd).
  const umask = process.umask();
  const mode = (rel: string): number => lstatSync(path.join(app, rel)).mode & 0o7777;
  t.equal(mode('bin/web'), 0o755 & ~umask, 'setuid dropped');
  t.equal(mode(''), 0o755 & ~umask, 'setgid and group write dropped on app/');
  t.equal(mode('.profile.d/env.sh'), 0o644 & ~umask, 'group/other write dropped');
  t.equal(lstatSync(entry.path).uid, process.getuid?.(), 'the <sha> dir itself stays the agent\'s');
  t.equal(srv.count('/good.tgz'), 1);
});

t.test('a slug packed by node-tar from a real directory extracts the same way', async (t) => {
  const work = await mkdtemp(path.join(tmpdir(), 'slipway-build-'));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  mkdirSync(path.join(work, 'app', 'public'), { recursive: true });
  writeFileSync(path.join(work, 'app', 'public', 'index.html'), '<h1>hi</h1>\n');
  writeFileSync(path.join(work, 'app', 'Procfile'), 'web: httpd\n');
  const chunks: Buffer[] = [];
  for await (const c of tarCreate({ gzip: true, cwd: work }, ['./app'])) chunks.push(Buffer.from(c));
  const body = Buffer.concat(chunks);
  const srv = await startServer(t, { '/built.tgz': { body } });
  const fx = await storeFixture(t);
  const entry = await fx.store.ensure({ url: `${srv.base}/built.tgz`, sha256: sha256(body) });
  t.equal(entry.files, 2);
  t.equal(readFileSync(path.join(entry.path, 'app', 'public', 'index.html'), 'utf8'), '<h1>hi</h1>\n');
  t.equal(lstatSync(path.join(entry.path, 'app', 'public')).uid, OWNER.uid);
});

t.test('a cached slug is returned without any request', async (t) => {
  const srv = await startServer(t, { '/good.tgz': { body: good } });
  const fx = await storeFixture(t);
  const url = `${srv.base}/good.tgz`;
  t.equal((await fx.store.ensure({ url, sha256: goodSha })).cached, false);
  const again = await fx.store.ensure({ url, sha256: goodSha });
  t.equal(again.cached, true);
  t.equal(again.files, GOOD_FILES);
  t.equal(srv.count('/good.tgz'), 1);
  // A fresh store over the same dir (an agent restart) also hits, even with a dead URL.
  const restarted = fx.makeStore();
  await restarted.init();
  const hit = await restarted.ensure({ url: 'http://127.0.0.1:1/gone.tgz', sha256: goodSha });
  t.same(hit, { sha256: goodSha, path: path.join(fx.dir, goodSha), bytes: GOOD_BYTES, files: GOOD_FILES, cached: true });
  t.equal(srv.count('/good.tgz'), 1);
});

t.test('20 concurrent ensure() calls of one new slug make exactly one request', async (t) => {
  const srv = await startServer(t, { '/good.tgz': { body: good, delayMs: 100 } });
  const fx = await storeFixture(t);
  const url = `${srv.base}/good.tgz`;
  const results = await Promise.all(Array.from({ length: 20 }, () => fx.store.ensure({ url, sha256: goodSha })));
  t.equal(srv.count('/good.tgz'), 1);
  t.equal(new Set(results.map((r) => r.path)).size, 1);
  t.ok(results.every((r) => r.files === GOOD_FILES));
  t.same(await fx.storeNames(), [goodSha, `${goodSha}.json`]);
});

t.test('has(), list() and stats() report committed slugs only', async (t) => {
  const other = tgz([{ path: 'app/x', body: 'x'.repeat(1000) }]);
  const otherSha = sha256(other);
  const srv = await startServer(t, { '/good.tgz': { body: good }, '/other.tgz': { body: other } });
  const fx = await storeFixture(t);
  t.equal(fx.store.has(goodSha), false);
  t.same(fx.store.stats(), { entries: 0, bytes: 0 });
  t.same(await fx.store.list(), []);
  await fx.store.ensure({ url: `${srv.base}/good.tgz`, sha256: goodSha });
  await fx.store.ensure({ url: `${srv.base}/other.tgz`, sha256: otherSha });
  t.equal(fx.store.has(goodSha), true);
  t.equal(fx.store.has('../etc'), false);
  t.same(fx.store.stats(), { entries: 2, bytes: GOOD_BYTES + 1000 });
  const listed = await fx.store.list();
  t.same(listed.map((e) => e.sha256), [goodSha, otherSha].sort());
  t.same(listed.find((e) => e.sha256 === otherSha), { sha256: otherSha, path: path.join(fx.dir, otherSha), bytes: 1000, files: 1 });
  const restarted = fx.makeStore();
  await restarted.init();
  t.same(restarted.stats(), { entries: 2, bytes: GOOD_BYTES + 1000 }, 'init() loads the index');
});

t.test('init() removes stale staging dirs and half-committed slugs, and keeps complete ones', async (t) => {
  const srv = await startServer(t, { '/good.tgz': { body: good } });
  const fx = await storeFixture(t);
  await fx.store.ensure({ url: `${srv.base}/good.tgz`, sha256: goodSha });
  const stale = path.join(fx.dir, `.staging-${'b'.repeat(64)}-abc123`);
  mkdirSync(path.join(stale, 'app', 'deep'), { recursive: true });
  writeFileSync(path.join(stale, 'app', 'deep', 'file'), 'half');
  const uncommitted = 'c'.repeat(64);
  mkdirSync(path.join(fx.dir, uncommitted, 'app'), { recursive: true });
  writeFileSync(path.join(fx.dir, `${'d'.repeat(64)}.json.tmp-1`), '{');
  writeFileSync(path.join(fx.dir, `${'e'.repeat(64)}.json`), '{}');
  const restarted = fx.makeStore();
  await restarted.init();
  t.same(await fx.storeNames(), [goodSha, `${goodSha}.json`]);
  t.equal(restarted.has(goodSha), true);
  t.match(fx.logText(), /removing a half-written slug/);
});

t.test('init() creates a missing store dir', async (t) => {
  const fx = await storeFixture(t);
  const nested = fx.makeStore({ dir: path.join(fx.root, 'a', 'b', 'slugs') });
  await nested.init();
  t.ok(lstatSync(path.join(fx.root, 'a', 'b', 'slugs')).isDirectory());
});

t.test('a malformed sha256 is refused before any file system or network work', async (t) => {
  const fx = await storeFixture(t);
  await t.rejects(fx.store.ensure({ url: 'http://127.0.0.1:1/x.tgz', sha256: '../../etc' }), { code: 'PROTOCOL_SCHEMA_VIOLATION' });
  await t.rejects(fx.store.ensure({ url: 'http://127.0.0.1:1/x.tgz', sha256: goodSha.toUpperCase() }), SlipwayError);
  t.same(await fx.storeNames(), []);
});

t.test('an unsupported scheme or an unparseable URL gives SLUG_UNSUPPORTED_SOURCE', async (t) => {
  const fx = await storeFixture(t);
  await t.rejects(fx.store.ensure({ url: 'ftp://127.0.0.1/x.tgz', sha256: goodSha }), { code: 'SLUG_UNSUPPORTED_SOURCE', retryable: false });
  await t.rejects(fx.store.ensure({ url: 'not a url', sha256: goodSha }), { code: 'SLUG_UNSUPPORTED_SOURCE' });
  t.same(await fx.storeNames(), []);
});

t.test('a custom source serves its own scheme', async (t) => {
  const fx = await storeFixture(t);
  const { Readable } = await import('node:stream');
  const seen: string[] = [];
  const store = fx.makeStore({
    sources: [{ schemes: ['mem:'], open: async (url) => { seen.push(url.href); return Readable.from([good]); } }],
  });
  const entry = await store.ensure({ url: 'mem://bucket/good.tgz', sha256: goodSha });
  t.equal(entry.files, GOOD_FILES);
  t.same(seen, ['mem://bucket/good.tgz']);
  await t.rejects(store.ensure({ url: 'https://example.invalid/x.tgz', sha256: 'f'.repeat(64) }), { code: 'SLUG_UNSUPPORTED_SOURCE' });
});

t.test('concurrent callers share one failed download; the next ensure() tries again', async (t) => {
  const srv = await startServer(t, { '/good.tgz': { status: 503 } });
  const fx = await storeFixture(t);
  const url = `${srv.base}/good.tgz`;
  const results = await Promise.allSettled(Array.from({ length: 5 }, () => fx.store.ensure({ url, sha256: goodSha })));
  t.ok(results.every((r) => r.status === 'rejected' && (r.reason as SlipwayError).code === 'SLUG_FETCH_FAILED'));
  t.equal(srv.count('/good.tgz'), 1);
  srv.routes.set('/good.tgz', { body: good });
  t.equal((await fx.store.ensure({ url, sha256: goodSha })).cached, false);
  t.equal(srv.count('/good.tgz'), 2);
});

t.test('a committed slug is flushed in the background, then marked durable with its boot id', async (t) => {
  const srv = await startServer(t, { '/good.tgz': { body: good } });
  const flushed: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  const fx = await storeFixture(t, { bootId: 'boot-a', flush: async (dir) => { flushed.push(dir); await gate; } });
  const meta = () => JSON.parse(readFileSync(path.join(fx.dir, `${goodSha}.json`), 'utf8'));
  const e = await fx.store.ensure({ url: `${srv.base}/good.tgz`, sha256: goodSha });
  t.equal(e.cached, false, 'the slug is usable before its data is flushed');
  t.match(meta(), { bootId: 'boot-a', durable: false });
  t.same(await fx.store.gc(Number.MAX_SAFE_INTEGER), { evicted: [], fits: false }, 'a slug being flushed is not evicted');
  release();
  await fx.store.settled();
  t.same(flushed, [fx.dir], 'the store flushed its own file system once');
  t.match(meta(), { bootId: 'boot-a', durable: true });
});

t.test('after a host crash, a slug that was never flushed is discarded; after an agent restart it is kept', async (t) => {
  const srv = await startServer(t, { '/good.tgz': { body: good } });
  const neverFlushes = async () => { throw new Error('EIO'); };
  const fx = await storeFixture(t, { bootId: 'boot-a', flush: neverFlushes });
  await fx.store.ensure({ url: `${srv.base}/good.tgz`, sha256: goodSha });
  await fx.store.settled();
  t.match(fx.logText(), /could not flush a committed slug/);

  // The agent restarts in the same boot: the page cache still holds the data; flush again.
  let flushes = 0;
  const sameBoot = fx.makeStore({ bootId: 'boot-a', flush: async () => { flushes++; } });
  await sameBoot.init();
  await sameBoot.settled();
  t.equal(sameBoot.has(goodSha), true, 'kept after an agent restart');
  t.equal(flushes, 1, 'and flushed now');
  t.match(JSON.parse(readFileSync(path.join(fx.dir, `${goodSha}.json`), 'utf8')), { durable: true });

  // A durable slug survives a reboot.
  const rebooted = fx.makeStore({ bootId: 'boot-b' });
  await rebooted.init();
  t.equal(rebooted.has(goodSha), true, 'a durable slug survives a new boot');

  // A slug that was not durable when the host went down is gone after the reboot, whole.
  const other = tgz([...GOOD_ENTRIES.filter((x) => x.path !== './app/Procfile'), { path: './app/Procfile', body: 'web: other\n' }]);
  srv.routes.set('/other.tgz', { body: other });
  const crashing = fx.makeStore({ bootId: 'boot-b', flush: neverFlushes });
  await crashing.init();
  await crashing.ensure({ url: `${srv.base}/other.tgz`, sha256: sha256(other) });
  await crashing.settled();
  const afterCrash = fx.makeStore({ bootId: 'boot-c' });
  await afterCrash.init();
  t.equal(afterCrash.has(sha256(other)), false, 'the unflushed slug is discarded');
  t.equal(afterCrash.has(goodSha), true, 'the durable one stays');
  t.same(await fx.storeNames(), [goodSha, `${goodSha}.json`], 'nothing of the discarded slug is left');
  t.match(fx.logText(), /discarding a slug committed just before the host went down/);
});
