// `<slugs>/<sha256>.json`: the metadata that makes `<sha256>/` a cache entry. Written last
// by the store when a slug is committed, rewritten when its data was flushed (durable), and
// its mtime is the slug's last use (LRU across agent restarts).
//
// On-disk format, version 1 (test/fixtures/state/v1/slug-meta.json):
//   {"version":1,"sha256":..,"bytes":..,"files":..,"compressedBytes":..,"fetchedAt":..,
//    "bootId":..,"durable":..[,"blake2b512":..]}
// `blake2b512` (hex, optional: absent for a slug that came without a signature) is the digest
// a minisign signature is checked against (signature.ts): kept so that a signed cache hit after
// an agent restart needs no second download (a presigned URL may have expired by then).
// Files written before formats were versioned carry the same fields without `version`; they
// are read as version 1 (test/fixtures/state/v0/slug-meta.json). A file of a newer version is
// not guessed at: the entry is not used (the cache is disposable: the slug is fetched again).
// A later change of shape bumps SLUG_META_VERSION, adds a v2 folder of fixtures and keeps
// reading version 1.
import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';

export const SLUG_META_VERSION = 1;

const Fields = {
  sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  /** Sum of the sizes of the slug's regular files. */
  bytes: Type.Integer({ minimum: 0 }),
  files: Type.Integer({ minimum: 0 }),
  compressedBytes: Type.Integer({ minimum: 0 }),
  fetchedAt: Type.String(),
  /** The boot the entry was committed in, and whether its data has been flushed since. */
  bootId: Type.String(),
  durable: Type.Boolean(),
  blake2b512: Type.Optional(Type.String({ pattern: '^[0-9a-f]{128}$' })),
};

export const SlugMeta = Type.Object(Fields);
export type SlugMeta = Static<typeof SlugMeta>;

const checkV1 = TypeCompiler.Compile(Type.Object({ version: Type.Literal(1), ...Fields }));
const checkUnversioned = TypeCompiler.Compile(Type.Object(Fields));

export function serializeSlugMeta(meta: SlugMeta): string {
  const { sha256, bytes, files, compressedBytes, fetchedAt, bootId, durable, blake2b512 } = meta;
  return JSON.stringify({ version: SLUG_META_VERSION, sha256, bytes, files, compressedBytes, fetchedAt, bootId, durable, ...(blake2b512 ? { blake2b512 } : {}) }) + '\n';
}

/** The metadata in `text`, or why it cannot be used. */
export function parseSlugMeta(text: string): { meta: SlugMeta } | { problem: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return { problem: `unreadable: ${(err as Error).message}` };
  }
  if (typeof parsed !== 'object' || parsed === null) return { problem: 'not an object' };
  const version = (parsed as { version?: unknown }).version;
  if (typeof version === 'number' && version > SLUG_META_VERSION) return { problem: `written by a newer agent (slug metadata version ${version})` };
  const check = version === undefined ? checkUnversioned : checkV1;
  if (!check.Check(parsed)) {
    const first = check.Errors(parsed).First();
    return { problem: `not slug metadata: ${first ? `${first.path || '/'} ${first.message}` : 'invalid'}` };
  }
  const { sha256, bytes, files, compressedBytes, fetchedAt, bootId, durable, blake2b512 } = parsed;
  return { meta: { sha256, bytes, files, compressedBytes, fetchedAt, bootId, durable, ...(blake2b512 ? { blake2b512 } : {}) } };
}
