// Signed slugs through the real store (agent/slugs/store.ts): slugs served by a real HTTP
// server, signed by the real minisign binary, extracted by the real GNU tar behind a probe that
// records each run. A refused slug must leave the store dir as it was and never reach tar.
import t from 'tap';
import path from 'node:path';
import { GOOD_ENTRIES, GOOD_FILES, sha256, tgz } from './fixtures/tarball.js';
import { startServer } from './fixtures/server.js';
import { storeFixture, type StoreFixture } from './fixtures/store.js';
import { minisign, probeTar, withTrustedComment } from './fixtures/minisign.js';
import type { SigningSettings } from '../../../../agent/slugs/signature.js';

const tar = probeTar(t);
const ms = minisign(t);
const A = ms.keyPair('a');
const B = ms.keyPair('b');
const C = ms.keyPair('c');
const good = tgz(GOOD_ENTRIES);
const goodSha = sha256(good);
const other = tgz([{ path: './app/', type: 'Directory' }, { path: './app/other', body: 'not the signed slug\n' }]);
const otherSha = sha256(other);
const byA = ms.sign(A, 'good.tgz', good, { trustedComment: 'demo v1' });
const byB = ms.sign(B, 'good.tgz', good);
const byC = ms.sign(C, 'good.tgz', good);
const otherByA = ms.sign(A, 'other.tgz', other);
const legacyByA = ms.sign(A, 'good.tgz', good, { legacy: true });

const requireA: SigningSettings = { required: true, publicKeys: [A.publicKey] };

async function signedStore(t: Parameters<typeof storeFixture>[0], signing: SigningSettings): Promise<StoreFixture> {
  return storeFixture(t, { signing });
}

t.test('a slug signed by a trusted key is verified, then extracted from the downloaded file', async (t) => {
  const srv = await startServer(t, { '/good.tgz': { body: good } });
  const fx = await signedStore(t, requireA);
  const before = tar.runs().length;
  const entry = await fx.store.ensure({ url: `${srv.base}/good.tgz`, sha256: goodSha, signature: byA });
  t.match(entry, { sha256: goodSha, path: path.join(fx.dir, goodSha), files: GOOD_FILES, cached: false });
  t.equal(tar.runs().length, before + 1, 'extracted once');
  t.same(await fx.storeNames(), [goodSha, `${goodSha}.json`], 'the downloaded file is gone');
  t.match(fx.logText(), new RegExp(`"keyId":"${A.id}","trustedComment":"demo v1","msg":"slug signature verified"`));
  const hit = await fx.store.ensure({ url: `${srv.base}/good.tgz`, sha256: goodSha, signature: byA });
  t.equal(hit.cached, true);
  t.equal(srv.count('/good.tgz'), 1, 'the cache hit is verified against the digest seen at download');
});

t.test('rotation: with two keys trusted, either signs, the right key first or second', async (t) => {
  const srv = await startServer(t, { '/good.tgz': { body: good } });
  const old = await signedStore(t, { required: true, publicKeys: [B.publicKey, A.publicKey] });
  t.equal((await old.store.ensure({ url: `${srv.base}/good.tgz`, sha256: goodSha, signature: byA })).files, GOOD_FILES);
  const fresh = await signedStore(t, { required: true, publicKeys: [A.publicKey, B.publicKey] });
  t.equal((await fresh.store.ensure({ url: `${srv.base}/good.tgz`, sha256: goodSha, signature: byB })).files, GOOD_FILES);
});

t.test('a wrong, missing or untrusted signature is refused with its code, and nothing of the slug is extracted', async (t) => {
  const cases: { what: string; signing?: SigningSettings; signature: string | undefined; code: string; message: RegExp; requests: number }[] = [
    { what: 'missing', signature: undefined, code: 'SLUG_UNSIGNED', message: /requires signed slugs/, requests: 0 },
    { what: 'over other bytes', signature: otherByA, code: 'SLUG_SIGNATURE_INVALID', message: /does not verify over the slug's bytes/, requests: 1 },
    { what: 'trusted comment altered', signature: withTrustedComment(byA, 'demo v2'), code: 'SLUG_SIGNATURE_INVALID', message: /trusted comment was altered/, requests: 1 },
    { what: 'untrusted key', signature: byC, code: 'SLUG_SIGNATURE_INVALID', message: new RegExp(`key ${C.id}, which is not trusted`), requests: 0 },
    { what: 'legacy format', signature: legacyByA, code: 'SLUG_SIGNATURE_INVALID', message: /legacy minisign signature/, requests: 0 },
    { what: 'not a signature', signature: 'hello', code: 'SLUG_SIGNATURE_INVALID', message: /4 lines/, requests: 0 },
    { what: 'bad, with keys but not required', signing: { required: false, publicKeys: [A.publicKey] }, signature: otherByA, code: 'SLUG_SIGNATURE_INVALID', message: /does not verify/, requests: 1 },
  ];
  for (const c of cases) {
    await t.test(c.what, async (t) => {
      const srv = await startServer(t, { '/good.tgz': { body: good } });
      const fx = await signedStore(t, c.signing ?? requireA);
      const tree = fx.tree();
      const runs = tar.runs().length;
      await t.rejects(fx.store.ensure({ url: `${srv.base}/good.tgz`, sha256: goodSha, signature: c.signature }), { code: c.code, retryable: false, message: c.message });
      t.equal(srv.count('/good.tgz'), c.requests, c.requests === 0 ? 'refused before any download' : 'downloaded once, not retried');
      t.equal(tar.runs().length, runs, 'tar never ran: no file of the slug was created');
      t.same(await fx.storeNames(), [], 'no staging dir, no downloaded file, no cache entry');
      t.same(fx.tree(), tree, 'nothing changed under the test root');
      t.equal(fx.store.has(goodSha), false);
    });
  }
});

t.test('a host without keys ignores a signature and streams the slug as before', async (t) => {
  const srv = await startServer(t, { '/good.tgz': { body: good } });
  const fx = await storeFixture(t);
  const entry = await fx.store.ensure({ url: `${srv.base}/good.tgz`, sha256: goodSha, signature: byC });
  t.equal(entry.files, GOOD_FILES);
  t.notMatch(fx.logText(), /slug signature verified/);
});

t.test('a cached slug is verified at every use, against the keys configured now', async (t) => {
  const srv = await startServer(t, { '/good.tgz': { body: good } });
  const fx = await signedStore(t, requireA);
  const url = `${srv.base}/good.tgz`;
  await fx.store.ensure({ url, sha256: goodSha, signature: byA });
  const runs = tar.runs().length;
  await t.rejects(fx.store.ensure({ url, sha256: goodSha, signature: otherByA }), { code: 'SLUG_SIGNATURE_INVALID', message: /does not verify/ });
  await t.rejects(fx.store.ensure({ url, sha256: goodSha }), { code: 'SLUG_UNSIGNED' });
  t.equal(fx.store.has(goodSha), true, 'a refused use leaves the cached slug to the others');

  // An agent restart: the digest is in the slug's metadata, so nothing is downloaded again
  // (a presigned URL may have expired by the time a re-adopted dyno's crash restart needs it).
  const restarted = fx.makeStore({ signing: requireA });
  await restarted.init();
  t.equal((await restarted.ensure({ url, sha256: goodSha, signature: byA })).cached, true);
  t.equal(srv.count('/good.tgz'), 1, 'no re-read: the BLAKE2b-512 digest was kept in the metadata');
  await t.rejects(restarted.ensure({ url, sha256: goodSha, signature: otherByA }), { code: 'SLUG_SIGNATURE_INVALID' }, 'and it is what a signature is checked against');
  t.equal(tar.runs().length, runs, 'a cache hit is never extracted again');

  // The key that signed it was dropped (rotation done): the cached slug no longer runs.
  const rotated = fx.makeStore({ signing: { required: true, publicKeys: [B.publicKey] } });
  await rotated.init();
  await t.rejects(rotated.ensure({ url, sha256: goodSha, signature: byA }), { code: 'SLUG_SIGNATURE_INVALID', message: /not trusted/ });
  t.equal((await rotated.ensure({ url, sha256: goodSha, signature: byB })).cached, true, 'its signature by the new key does');
});

t.test('a slug cached before signatures were required is checked against its source bytes', async (t) => {
  const srv = await startServer(t, { '/good.tgz': { body: good } });
  const fx = await storeFixture(t);
  const url = `${srv.base}/good.tgz`;
  await fx.store.ensure({ url, sha256: goodSha });
  const strict = fx.makeStore({ signing: requireA });
  await strict.init();
  await t.rejects(strict.ensure({ url, sha256: goodSha, signature: otherByA }), { code: 'SLUG_SIGNATURE_INVALID' });
  t.equal(srv.count('/good.tgz'), 2, 'read once more to hash it');
  // The source now serves other bytes under the slug's URL: they are not the cached slug.
  srv.routes.set('/good.tgz', { body: other });
  const again = fx.makeStore({ signing: requireA });
  await again.init();
  await t.rejects(again.ensure({ url, sha256: goodSha, signature: byA }), { code: 'SLUG_CHECKSUM_MISMATCH' });
});

t.test('on the signed path a wrong sha256 is SLUG_CHECKSUM_MISMATCH and leaves nothing', async (t) => {
  const srv = await startServer(t, { '/good.tgz': { body: good } });
  const fx = await signedStore(t, requireA);
  const runs = tar.runs().length;
  await t.rejects(fx.store.ensure({ url: `${srv.base}/good.tgz`, sha256: otherSha, signature: byA }), { code: 'SLUG_CHECKSUM_MISMATCH' });
  t.equal(tar.runs().length, runs);
  t.same(await fx.storeNames(), []);
});

t.test('on the signed path a cut download is retried into a fresh file; the deadline still holds', async (t) => {
  const srv = await startServer(t, { '/good.tgz': { sequence: [{ cut: good, bytes: 100 }, { body: good }] }, '/slow.tgz': { trickle: other, everyMs: 20 } });
  const fx = await signedStore(t, requireA);
  const retrying = fx.makeStore({ signing: requireA, retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 1 }, sleep: async () => undefined });
  t.equal((await retrying.ensure({ url: `${srv.base}/good.tgz`, sha256: goodSha, signature: byA })).files, GOOD_FILES);
  t.equal(srv.count('/good.tgz'), 2);
  t.same(await fx.storeNames(), [goodSha, `${goodSha}.json`], 'the cut attempt\'s file is gone');
  const slow = fx.makeStore({ signing: requireA, fetchTimeoutMs: 300 });
  await t.rejects(slow.ensure({ url: `${srv.base}/slow.tgz`, sha256: otherSha, signature: otherByA }), { code: 'SLUG_FETCH_FAILED', message: /deadline/ });
  t.same(await fx.storeNames(), [goodSha, `${goodSha}.json`], 'nothing of the slow one is left');
});

t.test('a slug fetched by URL alone is verified and filed under its digest', async (t) => {
  const srv = await startServer(t, { '/good.tgz': { body: good } });
  const fx = await signedStore(t, requireA);
  const entry = await fx.store.ensure({ url: `${srv.base}/good.tgz`, signature: byA });
  t.equal(entry.sha256, goodSha);
  t.same(await fx.storeNames(), [goodSha, `${goodSha}.json`]);
  t.equal((await fx.store.ensure({ url: `${srv.base}/good.tgz`, signature: byA })).cached, true, 'a second fetch by URL finds it');
});

t.test('requests for one slug at the same moment with different signatures each get their own verdict', async (t) => {
  const srv = await startServer(t, { '/good.tgz': { body: good, delayMs: 100 } });
  const url = `${srv.base}/good.tgz`;
  const badFirst = await signedStore(t, requireA);
  const [bad, ok] = await Promise.allSettled([
    badFirst.store.ensure({ url, sha256: goodSha, signature: otherByA }),
    badFirst.store.ensure({ url, sha256: goodSha, signature: byA }),
  ]);
  t.match(bad, { status: 'rejected', reason: { code: 'SLUG_SIGNATURE_INVALID' } });
  t.match(ok, { status: 'fulfilled', value: { sha256: goodSha, files: GOOD_FILES } }, 'the good one does not inherit the refusal of the download it joined');
  const goodFirst = await signedStore(t, requireA);
  const [first, joined] = await Promise.allSettled([
    goodFirst.store.ensure({ url, sha256: goodSha, signature: byA }),
    goodFirst.store.ensure({ url, sha256: goodSha, signature: otherByA }),
  ]);
  t.match(first, { status: 'fulfilled', value: { files: GOOD_FILES } });
  t.match(joined, { status: 'rejected', reason: { code: 'SLUG_SIGNATURE_INVALID' } }, 'a bad one does not ride on a good download');
});

t.test('a bad key in the settings is CONFIG_INVALID when the store is made', async (t) => {
  const fx = await storeFixture(t);
  t.throws(() => fx.makeStore({ signing: { required: true, publicKeys: ['RW' + 'A'.repeat(54)] } }), { code: 'CONFIG_INVALID', message: /slugPublicKeys\/0/ });
});
