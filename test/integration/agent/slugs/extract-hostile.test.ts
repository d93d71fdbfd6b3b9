// Hostile slugs: each is rejected whole with its code, writes nothing outside the staging dir
// (the sentinel beside the store and the temp root stay as they were) and leaves no staging
// dir behind. The bad entry comes after real files, so a partial extraction has to be undone.
import t from 'tap';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { type RawEntry, sha256, tarball, tgz } from './fixtures/tarball.js';
import { startServer } from './fixtures/server.js';
import { storeFixture } from './fixtures/store.js';

const PRELUDE: RawEntry[] = [
  { path: './app/', type: 'Directory' },
  { path: './app/Procfile', body: 'web: true\n' },
  { path: './app/big.bin', body: Buffer.alloc(256 * 1024, 7) },
];

const cases: Array<{ name: string; code: string; entries: (outside: string) => RawEntry[] }> = [
  { name: 'a ../escape entry', code: 'SLUG_UNSAFE_PATH', entries: () => [{ path: '../escape', body: 'pwned' }] },
  { name: 'a ./app/../../escape entry', code: 'SLUG_UNSAFE_PATH', entries: () => [{ path: './app/../../escape', body: 'pwned' }] },
  { name: 'an absolute path entry', code: 'SLUG_UNSAFE_PATH', entries: (outside) => [{ path: path.join(outside, 'abs'), body: 'pwned' }] },
  { name: 'an entry outside app/', code: 'SLUG_UNSAFE_PATH', entries: () => [{ path: './etc/passwd', body: 'root::0:0::/:/bin/sh\n' }] },
  { name: 'a backslash in a name', code: 'SLUG_UNSAFE_PATH', entries: () => [{ path: 'app\\..\\..\\escape', body: 'pwned' }] },
  { name: 'a hard link inside the slug', code: 'SLUG_UNSAFE_ENTRY', entries: () => [{ path: './app/hard', type: 'Link', linkpath: './app/Procfile' }] },
  { name: 'a hard link to a host file', code: 'SLUG_UNSAFE_ENTRY', entries: (outside) => [{ path: './app/hard', type: 'Link', linkpath: path.join(outside, 'keep') }] },
  { name: 'a symlink to /etc', code: 'SLUG_UNSAFE_ENTRY', entries: () => [{ path: './app/etc', type: 'SymbolicLink', linkpath: '/etc' }] },
  { name: 'a symlink climbing out with ..', code: 'SLUG_UNSAFE_ENTRY', entries: () => [{ path: './app/up', type: 'SymbolicLink', linkpath: '../../../sentinel' }] },
  { name: 'a symlink to the slug dir above app/', code: 'SLUG_UNSAFE_ENTRY', entries: () => [{ path: './app/up', type: 'SymbolicLink', linkpath: '..' }] },
  { name: 'app/ itself as a symlink', code: 'SLUG_UNSAFE_ENTRY', entries: () => [{ path: './app', type: 'SymbolicLink', linkpath: 'app/Procfile' }] },
  { name: 'a FIFO', code: 'SLUG_UNSAFE_ENTRY', entries: () => [{ path: './app/fifo', type: 'FIFO' }] },
  { name: 'a character device', code: 'SLUG_UNSAFE_ENTRY', entries: () => [{ path: './app/null', type: 'CharacterDevice' }] },
  { name: 'a block device', code: 'SLUG_UNSAFE_ENTRY', entries: () => [{ path: './app/sda', type: 'BlockDevice' }] },
  { name: 'an entry type node-tar would skip silently (GNU sparse)', code: 'SLUG_UNSAFE_ENTRY', entries: () => [{ path: './app/sparse', type: 'SparseFile', body: 'x' }] },
];

for (const c of cases) {
  t.test(`${c.name} gives ${c.code} and leaves nothing behind`, async (t) => {
    const fx = await storeFixture(t);
    const before = fx.tree();
    const body = tgz([...PRELUDE, ...c.entries(fx.sentinel)]);
    const srv = await startServer(t, { '/bad.tgz': { body } });
    await t.rejects(fx.store.ensure({ url: `${srv.base}/bad.tgz`, sha256: sha256(body) }), { code: c.code, retryable: false });
    t.same(await fx.storeNames(), [], 'no staging dir, no entry');
    t.same(fx.tree(), before, 'nothing outside the store changed (names, contents, modes, owners)');
    t.notOk(existsSync(path.join(fx.root, 'escape')));
    t.notOk(existsSync(path.join(fx.sentinel, 'abs')));
    t.equal(fx.store.has(sha256(body)), false);
  });
}

t.test('a later entry written through (or over) a symlink rejects the slug', async (t) => {
  const fx = await storeFixture(t);
  const body = tgz([
    { path: './app/real/', type: 'Directory' },
    { path: './app/d', type: 'SymbolicLink', linkpath: 'real' },
    { path: './app/d/x', body: 'through?' },
  ]);
  const srv = await startServer(t, { '/s.tgz': { body } });
  await t.rejects(fx.store.ensure({ url: `${srv.base}/s.tgz`, sha256: sha256(body) }), { code: 'SLUG_UNSAFE_ENTRY', message: /through or over the symlink "app\/d"/ });
  t.same(await fx.storeNames(), [], 'nothing of the slug is left');
  const replace = tgz([{ path: './app/', type: 'Directory' }, { path: './app/l', type: 'SymbolicLink', linkpath: 'x' }, { path: './app/l', body: 'over' }]);
  srv.routes.set('/r.tgz', { body: replace });
  await t.rejects(fx.store.ensure({ url: `${srv.base}/r.tgz`, sha256: sha256(replace) }), { code: 'SLUG_UNSAFE_ENTRY' });
});

t.test('a file named after the slug root, or a non-directory app, is refused', async (t) => {
  const fx = await storeFixture(t);
  const body = tgz([{ path: './app', body: 'not a dir' }]);
  const srv = await startServer(t, { '/f.tgz': { body } });
  await t.rejects(fx.store.ensure({ url: `${srv.base}/f.tgz`, sha256: sha256(body) }), { code: 'SLUG_UNSAFE_ENTRY' });
  t.same(await fx.storeNames(), []);
});

t.test('a tar with a bad header checksum is SLUG_CORRUPT', async (t) => {
  const fx = await storeFixture(t);
  const tar = tarball([...PRELUDE, { path: './app/late', body: 'x' }]);
  // Corrupt the header of the last entry (after the 256 KiB body): strict mode rejects it.
  const lastHeader = tar.length - 1024 - 1024;
  tar[lastHeader + 10] = 0x41;
  const body = gzipSync(tar);
  const srv = await startServer(t, { '/c.tgz': { body } });
  await t.rejects(fx.store.ensure({ url: `${srv.base}/c.tgz`, sha256: sha256(body) }), { code: 'SLUG_CORRUPT' });
  t.same(await fx.storeNames(), []);
});
