// One pass over a slug's compressed bytes for the signed path of the store (store.ts): SHA-256
// (the slug's identity) and BLAKE2b-512 (what a minisign signature is over, signature.ts),
// optionally into a file, within the compressed-size budget. Nothing here is extracted or
// judged as a tar: the store verifies the signature first and only then hands the file to the
// extractor (extract.ts), so a slug whose signature fails never reaches tar.
//
// The unsigned path never comes here: it stays one streaming pass through extract.ts.
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import type { Readable } from 'node:stream';
import { SlipwayError } from '../../shared/errors.js';
import { DEFAULT_SLUG_LIMITS, SlugBudget, type SlugLimits } from './budget.js';
import { sourceFailure } from './failures.js';
import { slugDigest } from './signature.js';

export interface HashedCopy {
  sha256: string;
  /** BLAKE2b-512 of the same bytes. */
  blake2b512: Buffer;
  /** Compressed bytes read from the source. */
  bytes: number;
}

function writeFailure(err: unknown, file: string): SlipwayError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (code === 'ENOSPC' || code === 'EDQUOT') return new SlipwayError('SLUG_DISK_FULL', `the slug cache's file system is full: ${message}`, { cause: err });
  return new SlipwayError('INTERNAL', `writing the downloaded slug to ${file} failed: ${message}`, { cause: err });
}

/**
 * Reads `source` to its end. With `file`, writes the bytes there (created exclusively, 0600: it
 * lives in the store's 0700 dir and is read back by the agent only). Rejects with a
 * SlipwayError: the source's (SLUG_FETCH_FAILED, or the reason the caller destroyed it with),
 * SLUG_TOO_LARGE past `limits.maxCompressedBytes`, SLUG_DISK_FULL. Removes nothing: the caller
 * discards the file.
 */
export async function hashedCopy(source: Readable, file: string | undefined, limits: SlugLimits = DEFAULT_SLUG_LIMITS): Promise<HashedCopy> {
  const sha = createHash('sha256');
  const blake = slugDigest();
  const budget = new SlugBudget(limits);
  let bytes = 0;
  let out: fsp.FileHandle | undefined;
  // The file is opened before the first read: an error the source hits meanwhile must not be
  // an unhandled 'error' event; the iteration below finds it in source.errored.
  source.on('error', () => undefined);
  try {
    if (file !== undefined) out = await fsp.open(file, 'wx', 0o600).catch((err: unknown) => { throw writeFailure(err, file); });
    try {
      for await (const chunk of source as AsyncIterable<Buffer>) {
        bytes += chunk.length;
        const over = budget.onCompressed(chunk.length);
        if (over) throw over;
        sha.update(chunk);
        blake.update(chunk);
        if (out) await out.write(chunk).catch((err: unknown) => { throw writeFailure(err, file as string); });
      }
    } catch (err) {
      source.destroy();
      throw err instanceof SlipwayError ? err : sourceFailure(err);
    }
  } finally {
    await out?.close().catch(() => undefined);
  }
  return { sha256: sha.digest('hex'), blake2b512: blake.digest(), bytes };
}
