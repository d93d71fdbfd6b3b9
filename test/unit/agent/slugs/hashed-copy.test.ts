// The signed path's copy of a slug's compressed bytes (agent/slugs/hashed-copy.ts): both
// digests of exactly the bytes read, the file holding them, and its bounds and failures.
import t from 'tap';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { hashedCopy } from '../../../../agent/slugs/hashed-copy.js';
import { DEFAULT_SLUG_LIMITS } from '../../../../agent/slugs/budget.js';

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-hashed-copy-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const chunks = [Buffer.from('first chunk '), Buffer.alloc(100_000, 7), Buffer.from(' last')];
const all = Buffer.concat(chunks);

t.test('digests and file are of exactly the bytes read', async (t) => {
  const file = join(tempDir(t), 'slug');
  const copy = await hashedCopy(Readable.from(chunks), file);
  t.equal(copy.sha256, createHash('sha256').update(all).digest('hex'));
  t.same(copy.blake2b512, createHash('blake2b512').update(all).digest());
  t.equal(copy.bytes, all.length);
  t.same(readFileSync(file), all);
  t.equal(statSync(file).mode & 0o777, 0o600, 'only the agent reads it');
  const hashOnly = await hashedCopy(Readable.from(chunks), undefined);
  t.same(hashOnly, copy, 'without a file: the same digests, nothing written');
});

t.test('a file that exists is not overwritten', async (t) => {
  const file = join(tempDir(t), 'slug');
  writeFileSync(file, 'someone else\'s');
  await t.rejects(hashedCopy(Readable.from(chunks), file), { code: 'INTERNAL', message: /EEXIST|exists/ });
  t.equal(readFileSync(file, 'utf8'), 'someone else\'s');
});

t.test('past the compressed budget: SLUG_TOO_LARGE and the source is destroyed', async (t) => {
  const source = Readable.from(chunks);
  await t.rejects(hashedCopy(source, join(tempDir(t), 'slug'), { ...DEFAULT_SLUG_LIMITS, maxCompressedBytes: 1000 }), { code: 'SLUG_TOO_LARGE', message: /compressed slug exceeds 1000 bytes/ });
  t.ok(source.destroyed);
});

t.test('a source that fails or ends early is SLUG_FETCH_FAILED (retryable)', async (t) => {
  const broken = new PassThrough();
  broken.write('some bytes');
  setImmediate(() => broken.destroy(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })));
  await t.rejects(hashedCopy(broken, join(tempDir(t), 'a')), { code: 'SLUG_FETCH_FAILED', retryable: true, message: /ECONNRESET/ });
  const cut = new PassThrough();
  cut.write('some bytes');
  setImmediate(() => cut.destroy());
  await t.rejects(hashedCopy(cut, join(tempDir(t), 'b')), { code: 'SLUG_FETCH_FAILED', retryable: true });
});
