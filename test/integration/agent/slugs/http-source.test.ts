// The store over a real HTTP server: status codes, broken transfers, timeouts, redirects,
// and presigned-URL secrets kept out of logs. Every failure leaves the store dir as it was.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { HttpSlugSource, isLoopbackHost } from '../../../../agent/slugs/http-source.js';
import { GOOD_ENTRIES, GOOD_FILES, sha256, tgz } from './fixtures/tarball.js';
import { startServer } from './fixtures/server.js';
import { capturingLogger, storeFixture } from './fixtures/store.js';

const good = tgz(GOOD_ENTRIES);
const goodSha = sha256(good);
// Big enough that a cut or a stall happens mid-body rather than after the last byte.
const big = tgz([{ path: 'app/', type: 'Directory' }, { path: 'app/blob', body: randomBytes(400_000) }]);
const bigSha = sha256(big);

async function fixtureWithGood(t: { teardown(fn: () => unknown): void }) {
  const srv = await startServer(t, { '/good.tgz': { body: good } });
  const fx = await storeFixture(t);
  await fx.store.ensure({ url: `${srv.base}/good.tgz`, sha256: goodSha });
  return { srv, fx };
}

const statusCases: Array<[number, string, boolean]> = [
  [404, 'SLUG_NOT_FOUND', false],
  [410, 'SLUG_NOT_FOUND', false],
  [401, 'SLUG_FORBIDDEN', false],
  [403, 'SLUG_FORBIDDEN', false],
  [500, 'SLUG_FETCH_FAILED', true],
  [503, 'SLUG_FETCH_FAILED', true],
];
for (const [status, code, retryable] of statusCases) {
  t.test(`HTTP ${status} gives ${code}`, async (t) => {
    const { srv, fx } = await fixtureWithGood(t);
    srv.routes.set('/x.tgz', { status });
    await t.rejects(fx.store.ensure({ url: `${srv.base}/x.tgz`, sha256: bigSha }), { code, retryable });
    t.same(await fx.storeNames(), [goodSha, `${goodSha}.json`], 'only the other slug remains');
  });
}

t.test('a checksum mismatch gives SLUG_CHECKSUM_MISMATCH and leaves no dir', async (t) => {
  const { srv, fx } = await fixtureWithGood(t);
  srv.routes.set('/big.tgz', { body: big });
  const wrong = sha256(Buffer.from('something else'));
  await t.rejects(fx.store.ensure({ url: `${srv.base}/big.tgz`, sha256: wrong }), { code: 'SLUG_CHECKSUM_MISMATCH', retryable: false, message: new RegExp(bigSha) });
  t.same(await fx.storeNames(), [goodSha, `${goodSha}.json`]);
  t.equal(fx.store.has(wrong), false);
  t.same(fx.store.stats().entries, 1);
});

t.test('a connection cut mid-body gives a retryable SLUG_FETCH_FAILED, and a retry succeeds', async (t) => {
  const { srv, fx } = await fixtureWithGood(t);
  srv.routes.set('/big.tgz', { cut: big, bytes: 100_000 });
  await t.rejects(fx.store.ensure({ url: `${srv.base}/big.tgz`, sha256: bigSha }), { code: 'SLUG_FETCH_FAILED', retryable: true });
  t.same(await fx.storeNames(), [goodSha, `${goodSha}.json`]);
  srv.routes.set('/big.tgz', { body: big });
  const entry = await fx.store.ensure({ url: `${srv.base}/big.tgz`, sha256: bigSha });
  t.equal(entry.bytes, 400_000);
  t.equal(srv.count('/big.tgz'), 2);
});

t.test('bytes that are not gzip give SLUG_CORRUPT', async (t) => {
  const { srv, fx } = await fixtureWithGood(t);
  const html = Buffer.from('<html><body>Service Unavailable</body></html>\n'.repeat(40));
  srv.routes.set('/html.tgz', { body: html });
  await t.rejects(fx.store.ensure({ url: `${srv.base}/html.tgz`, sha256: sha256(html) }), { code: 'SLUG_CORRUPT', retryable: false });
  t.same(await fx.storeNames(), [goodSha, `${goodSha}.json`]);
});

t.test('gzip of something that is not a tar gives SLUG_CORRUPT', async (t) => {
  const { srv, fx } = await fixtureWithGood(t);
  const body = gzipSync(Buffer.from('just text, no tar headers\n'.repeat(100)));
  srv.routes.set('/text.tgz', { body });
  await t.rejects(fx.store.ensure({ url: `${srv.base}/text.tgz`, sha256: sha256(body) }), { code: 'SLUG_CORRUPT' });
  t.same(await fx.storeNames(), [goodSha, `${goodSha}.json`]);
});

t.test('a truncated gzip served whole (its own checksum) gives SLUG_CORRUPT', async (t) => {
  const { srv, fx } = await fixtureWithGood(t);
  const cut = big.subarray(0, Math.floor(big.length / 2));
  srv.routes.set('/half.tgz', { body: cut });
  await t.rejects(fx.store.ensure({ url: `${srv.base}/half.tgz`, sha256: sha256(cut) }), { code: 'SLUG_CORRUPT' });
  t.same(await fx.storeNames(), [goodSha, `${goodSha}.json`]);
});

t.test('a truncated gzip served as the full slug gives SLUG_CHECKSUM_MISMATCH', async (t) => {
  const { srv, fx } = await fixtureWithGood(t);
  srv.routes.set('/half.tgz', { body: big.subarray(0, Math.floor(big.length / 2)) });
  await t.rejects(fx.store.ensure({ url: `${srv.base}/half.tgz`, sha256: bigSha }), { code: 'SLUG_CHECKSUM_MISMATCH' });
  t.same(await fx.storeNames(), [goodSha, `${goodSha}.json`]);
});

t.test('a stalled transfer fails after the stall timeout', async (t) => {
  const { srv, fx } = await fixtureWithGood(t);
  srv.routes.set('/stall.tgz', { stall: big, bytes: 50_000 });
  const store = fx.makeStore({ sources: [new HttpSlugSource({ log: fx.log, stallTimeoutMs: 200 })] });
  await t.rejects(store.ensure({ url: `${srv.base}/stall.tgz`, sha256: bigSha }), { code: 'SLUG_FETCH_FAILED', retryable: true, message: /stalled/ });
  t.same(await fx.storeNames(), [goodSha, `${goodSha}.json`]);
});

t.test('a transfer that trickles past the total deadline fails', async (t) => {
  const { srv, fx } = await fixtureWithGood(t);
  srv.routes.set('/slow.tgz', { trickle: big, everyMs: 20 });
  const store = fx.makeStore({ fetchTimeoutMs: 300 });
  await t.rejects(store.ensure({ url: `${srv.base}/slow.tgz`, sha256: bigSha }), { code: 'SLUG_FETCH_FAILED', retryable: true, message: /deadline/ });
  t.same(await fx.storeNames(), [goodSha, `${goodSha}.json`]);
});

t.test('a redirect to loopback http is followed; redirect chains are capped at 5', async (t) => {
  const { srv, fx } = await fixtureWithGood(t);
  srv.routes.set('/r.tgz', { status: 302, location: '/big.tgz' });
  srv.routes.set('/big.tgz', { body: big });
  const entry = await fx.store.ensure({ url: `${srv.base}/r.tgz`, sha256: bigSha });
  t.equal(entry.files, 1);
  t.equal(srv.count('/r.tgz'), 1);
  t.equal(srv.count('/big.tgz'), 1);

  for (let i = 0; i < 7; i++) srv.routes.set(`/hop${i}`, { status: 307, location: `/hop${i + 1}` });
  srv.routes.set('/hop7', { body: good });
  const other = sha256(Buffer.from('never'));
  await t.rejects(fx.store.ensure({ url: `${srv.base}/hop0`, sha256: other }), { code: 'SLUG_FETCH_FAILED', retryable: false, message: /redirected more than 5 times/ });
  t.equal(srv.count('/hop5'), 1, 'five redirects were followed');
  t.equal(srv.count('/hop6'), 0, 'the sixth was not');
});

t.test('a redirect to plain http off loopback, or to another scheme, is refused', async (t) => {
  const { srv, fx } = await fixtureWithGood(t);
  srv.routes.set('/away', { status: 301, location: 'http://slugs.example.com/x.tgz' });
  srv.routes.set('/file', { status: 302, location: 'file:///etc/passwd' });
  await t.rejects(fx.store.ensure({ url: `${srv.base}/away`, sha256: bigSha }), { code: 'SLUG_UNSUPPORTED_SOURCE' });
  await t.rejects(fx.store.ensure({ url: `${srv.base}/file`, sha256: bigSha }), { code: 'SLUG_UNSUPPORTED_SOURCE' });
  t.same(await fx.storeNames(), [goodSha, `${goodSha}.json`]);
});

t.test('presigned URL signatures never reach the logs or the error messages', async (t) => {
  const { srv, fx } = await fixtureWithGood(t);
  srv.routes.set('/signed.tgz', { status: 302, location: '/real.tgz?X-Amz-Signature=secret2' });
  srv.routes.set('/real.tgz', { body: big });
  const messages: string[] = [];
  const entry = await fx.store.ensure({ url: `${srv.base}/signed.tgz?X-Amz-Signature=secret&X-Amz-Credential=AKIA`, sha256: bigSha });
  t.equal(entry.cached, false);
  for (const path of ['/missing.tgz', '/signed.tgz']) {
    await fx.store.ensure({ url: `${srv.base}${path}?X-Amz-Signature=secret`, sha256: sha256(Buffer.from(path)) }).catch((err: Error) => messages.push(err.message));
  }
  t.equal(messages.length, 2);
  t.ok(srv.seen.some((u) => u.includes('X-Amz-Signature=secret')), 'the server did get the signature');
  const logs = fx.logText();
  t.match(logs, /slug download started/);
  t.match(logs, /slug download failed/);
  t.match(logs, /\?\[redacted\]/);
  t.notMatch(logs, /secret|AKIA/, 'no signature in the logs');
  t.notMatch(messages.join('\n'), /secret|AKIA/, 'no signature in error messages');
});

t.test('the HTTP source honours its AbortSignal mid-body', async (t) => {
  const srv = await startServer(t, { '/stall.tgz': { stall: big, bytes: 10_000 } });
  const source = new HttpSlugSource({ log: capturingLogger().log });
  const controller = new AbortController();
  const body = await source.open(new URL(`${srv.base}/stall.tgz`), controller.signal);
  const failed = new Promise<unknown>((resolve) => body.on('error', resolve));
  body.resume();
  controller.abort(new Error('shutting down'));
  t.match(await failed, { code: 'SLUG_FETCH_FAILED', message: /shutting down/ });
  const early = new AbortController();
  early.abort();
  await t.rejects(source.open(new URL(`${srv.base}/stall.tgz`), early.signal), { code: 'SLUG_FETCH_FAILED' });
});

t.test('loopback detection', async (t) => {
  for (const h of ['127.0.0.1', '127.8.9.10', 'localhost', '[::1]', '::1']) t.equal(isLoopbackHost(h), true, h);
  for (const h of ['10.0.0.1', '128.0.0.1', 'example.com', '[::2]', 'localhost.example.com', '169.254.169.254']) t.equal(isLoopbackHost(h), false, h);
});

t.test('a slug fetched over the real server has GOOD_FILES files', async (t) => {
  const { fx } = await fixtureWithGood(t);
  t.equal((await fx.store.list())[0]?.files, GOOD_FILES);
});
