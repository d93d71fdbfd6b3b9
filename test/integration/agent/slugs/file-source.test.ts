// The file:// source through the store: a slug on local disk, a missing file, a directory,
// a FIFO (refused without hanging), an unreadable file, URLs for other hosts, abort.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { FileSlugSource, slugFilePath } from '../../../../agent/slugs/file-source.js';
import { GOOD_ENTRIES, GOOD_FILES, sha256, tgz } from './fixtures/tarball.js';
import { capturingLogger, storeFixture } from './fixtures/store.js';

type Teardown = { teardown(fn: () => unknown): void };

const good = tgz(GOOD_ENTRIES);
const goodSha = sha256(good);

/** A temp dir holding good.tgz, and a store whose only source is the file source. */
async function setup(t: Teardown) {
  const dir = mkdtempSync(path.join(tmpdir(), 'slipway-file-slugs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'good.tgz'), good);
  const fx = await storeFixture(t);
  const store = fx.makeStore({ sources: [new FileSlugSource({ log: fx.log })] });
  return { dir, fx, store };
}

t.test('a slug on local disk is read through the store and extracted', async (t) => {
  const { dir, fx, store } = await setup(t);
  const url = pathToFileURL(path.join(dir, 'good.tgz')).href;
  t.match(url, /^file:\/\/\//);
  const entry = await store.ensure({ url, sha256: goodSha });
  t.equal(entry.cached, false);
  t.equal(entry.files, GOOD_FILES);
  t.equal(readFileSync(path.join(entry.path, 'app/Procfile'), 'utf8'), 'web: ./bin/web\n');
  t.same(await fx.storeNames(), [goodSha, `${goodSha}.json`]);

  // file://localhost/... is this host too; a space in the name is percent-encoded.
  writeFileSync(path.join(dir, 'my slug.tgz'), good);
  const fx2 = await storeFixture(t);
  const again = fx2.makeStore({ sources: [new FileSlugSource({ log: fx2.log })] });
  const viaLocalhost = await again.ensure({ url: `file://localhost${pathToFileURL(path.join(dir, 'my slug.tgz')).pathname}`, sha256: goodSha });
  t.equal(viaLocalhost.files, GOOD_FILES);
  t.equal(viaLocalhost.cached, false);
});

t.test('a missing file gives SLUG_NOT_FOUND', async (t) => {
  const { dir, fx, store } = await setup(t);
  await t.rejects(store.ensure({ url: pathToFileURL(path.join(dir, 'missing.tgz')).href, sha256: goodSha }), { code: 'SLUG_NOT_FOUND', retryable: false });
  await t.rejects(store.ensure({ url: pathToFileURL(path.join(dir, 'good.tgz', 'below-a-file.tgz')).href, sha256: goodSha }), { code: 'SLUG_NOT_FOUND' });
  t.same(await fx.storeNames(), []);
});

t.test('a directory, or a FIFO, gives SLUG_UNSUPPORTED_SOURCE', async (t) => {
  const { dir, fx, store } = await setup(t);
  mkdirSync(path.join(dir, 'a-dir.tgz'));
  await t.rejects(store.ensure({ url: pathToFileURL(path.join(dir, 'a-dir.tgz')).href, sha256: goodSha }), {
    code: 'SLUG_UNSUPPORTED_SOURCE', retryable: false, message: /is a directory/,
  });
  // A FIFO without a writer: a blocking open would hang here; the source must refuse it.
  const fifo = path.join(dir, 'fifo.tgz');
  execFileSync('mkfifo', [fifo]);
  await t.rejects(store.ensure({ url: pathToFileURL(fifo).href, sha256: goodSha }), { code: 'SLUG_UNSUPPORTED_SOURCE', message: /FIFO/ });
  t.same(await fx.storeNames(), []);
});

// Root reads any file (CAP_DAC_OVERRIDE): then the file is opened from a child running as
// nobody, through the TypeScript loader tap runs this file with.
const asRoot = process.getuid?.() === 0;
const tsLoader = process.execArgv.find((a) => a.includes('@tapjs/typescript'));
t.test('an unreadable file gives SLUG_FORBIDDEN', { skip: asRoot && !tsLoader ? 'root outside tap: no TypeScript loader for an unprivileged child' : false }, async (t) => {
  const { dir, store } = await setup(t);
  const locked = path.join(dir, 'locked.tgz');
  writeFileSync(locked, good);
  if (!asRoot) {
    chmodSync(locked, 0o000);
    await t.rejects(store.ensure({ url: pathToFileURL(locked).href, sha256: goodSha }), { code: 'SLUG_FORBIDDEN', retryable: false });
    return;
  }
  chmodSync(dir, 0o755); // the file itself, not its dir, is what refuses
  chmodSync(locked, 0o600);
  // tap's process tracker follows the child and writes .tap/ under _TAPJS_PROCESSINFO_CWD_ (or
  // its cwd) when it exits: point it at a dir nobody may write, which teardown removes.
  const cwd = path.join(dir, 'child-cwd');
  mkdirSync(cwd);
  chownSync(cwd, 65534, 65534);
  const out = execFileSync(process.execPath, [tsLoader ?? '', fileURLToPath(new URL('./fixtures/open-as.ts', import.meta.url)), pathToFileURL(locked).href], {
    uid: 65534, gid: 65534, cwd, encoding: 'utf8', timeout: 60_000,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', TS_NODE_TRANSPILE_ONLY: '1', _TAPJS_PROCESSINFO_CWD_: cwd },
  });
  t.match(JSON.parse(out.trim().split('\n').pop() ?? '{}'), { code: 'SLUG_FORBIDDEN', retryable: false, message: /locked\.tgz is not readable by the agent \(EACCES/ });
});

t.test('file URLs for another host, or that are not plain paths, give SLUG_UNSUPPORTED_SOURCE', async (t) => {
  const { fx, store } = await setup(t);
  for (const url of ['file://slugs.example.com/tmp/good.tgz', 'file:///tmp/good.tgz?x=1', 'file:///tmp/good.tgz#x', 'file:///tmp/a%2Fb.tgz', 'file:///tmp/a%00b.tgz']) {
    await t.rejects(store.ensure({ url, sha256: goodSha }), { code: 'SLUG_UNSUPPORTED_SOURCE', retryable: false }, url);
  }
  t.equal(slugFilePath(new URL('file://localhost/srv/slugs/a%20b.tgz')), '/srv/slugs/a b.tgz');
  t.same(await fx.storeNames(), []);
});

t.test('the file source honours its AbortSignal before and during the read', async (t) => {
  const { dir } = await setup(t);
  const source = new FileSlugSource({ log: capturingLogger().log });
  const url = pathToFileURL(path.join(dir, 'good.tgz'));
  const controller = new AbortController();
  const body = await source.open(url, controller.signal);
  const failed = new Promise<unknown>((resolve) => body.on('error', resolve));
  controller.abort(new Error('shutting down'));
  t.match(await failed, { code: 'SLUG_FETCH_FAILED', message: /shutting down/ });
  t.equal(body.destroyed, true);

  const early = new AbortController();
  early.abort();
  await t.rejects(source.open(url, early.signal), { code: 'SLUG_FETCH_FAILED' });

  // Read whole, the bytes are exactly the file's.
  const chunks: Buffer[] = [];
  for await (const chunk of await source.open(url, new AbortController().signal)) chunks.push(chunk as Buffer);
  t.equal(sha256(Buffer.concat(chunks)), goodSha);
});
