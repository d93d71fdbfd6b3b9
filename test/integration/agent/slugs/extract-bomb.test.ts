// A real 1000x gzip bomb (1 GiB of zeros in ~1 MiB, fixtures/bomb.ts) is refused with
// SLUG_TOO_LARGE long before it is read to its end, and at most 100 x the 1 MiB grace of it
// reaches the disk (none of it when the slug's size is known up front). The README's
// "Extraction" bullet states the bound these tests hold the extractor to.
import t from 'tap';
import { chownSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { extractSlug } from '../../../../agent/slugs/extract.js';
import { RATIO_GRACE_BYTES } from '../../../../agent/slugs/budget.js';
import { quietLogger } from '../../../helpers/host.js';
import { BOMB_FILE_BYTES, bombSize, zeroBomb } from './fixtures/bomb.js';
import { OWNER, storeFixture } from './fixtures/store.js';

const LIMIT = 100 * RATIO_GRACE_BYTES;

function staging(t: { teardown(fn: () => unknown): void }): string {
  const root = mkdtempSync(path.join(tmpdir(), 'slipway-bomb-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const dir = path.join(root, 'staging');
  mkdirSync(dir);
  chownSync(dir, OWNER.uid, OWNER.gid);
  return dir;
}

/** Bytes of the regular files under `dir`: what reached the disk. */
function bytesOnDisk(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) n += lstatSync(path.join(e.parentPath, e.name)).size;
  }
  return n;
}

const compressed = await bombSize();

t.test('the fixture is a real 1000x bomb', async (t) => {
  t.ok(BOMB_FILE_BYTES / compressed >= 1000, `${BOMB_FILE_BYTES} bytes from ${compressed} compressed: ${(BOMB_FILE_BYTES / compressed).toFixed(0)}x`);
  t.ok(compressed < 1.1 * 1024 * 1024, 'about 1 MiB compressed');
});

t.test('of unknown size: refused on the stream, at most 100 MiB on disk, most of it never read', async (t) => {
  const dir = staging(t);
  const bomb = zeroBomb();
  await t.rejects(extractSlug({ source: bomb.stream, stagingDir: dir, owner: OWNER, expectedSha256: undefined, log: quietLogger() }),
    { code: 'SLUG_TOO_LARGE', retryable: false, message: /expands more than 100x \(\d+ bytes of tar from \d+ compressed, past a grace of 1048576\)/ });
  const written = bytesOnDisk(dir);
  t.ok(written > 0 && written <= LIMIT, `${written} bytes reached the disk (bound ${LIMIT}, the bomb is ${BOMB_FILE_BYTES})`);
  // 100 MiB of zeros is ~100 KiB of gzip; the rest is what the pipes held when it stopped.
  t.ok(bomb.compressedRead() < compressed / 3, `${bomb.compressedRead()} of ${compressed} compressed bytes were read`);
});

t.test('of known size: refused at the header, nothing of the file on disk', async (t) => {
  const dir = staging(t);
  const bomb = zeroBomb();
  await t.rejects(extractSlug({ source: bomb.stream, stagingDir: dir, owner: OWNER, expectedSha256: undefined, log: quietLogger(), declaredBytes: compressed }),
    { code: 'SLUG_TOO_LARGE', message: new RegExp(`expands more than 100x \\(its headers declare ${BOMB_FILE_BYTES} bytes, its size is ${compressed} compressed\\)`) });
  t.equal(bytesOnDisk(dir), 0, 'no byte of the 1 GiB file was written');
  t.ok(bomb.compressedRead() < 128 * 1024, `${bomb.compressedRead()} compressed bytes were read`);
});

t.test('through the slug store, streamed over HTTP without a length: refused, nothing left', async (t) => {
  let sent = 0;
  const server = http.createServer((_req, res) => {
    const bomb = zeroBomb();
    res.writeHead(200, { 'content-type': 'application/gzip' });
    bomb.stream.pipe(res);
    res.on('close', () => {
      sent = bomb.compressedRead();
      bomb.stream.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const fx = await storeFixture(t);
  const before = fx.tree();
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/bomb.tgz`;
  await t.rejects(fx.store.ensure({ url }), { code: 'SLUG_TOO_LARGE', message: /expands more than 100x/ });
  t.same(await fx.storeNames(), [], 'no staging dir, no entry');
  t.same(fx.tree(), before, 'nothing outside the store changed');
  await new Promise((r) => setImmediate(r));
  t.ok(sent < compressed / 2, `the server had handed over ${sent} of ${compressed} bytes when the agent hung up`);
});
