// One pass over a slug's bytes: every chunk goes through a SHA-256 hash and node-tar's
// extractor at the same time (no temporary .tgz), into a staging dir the caller owns.
// The caller (store.ts) decides what happens to the staging dir; this module only fills it
// and says whether the result may be trusted.
//
// Precedence of failures: a known digest that differs wins (the bytes were not the slug we
// were asked for), then a policy violation, then a source (network) failure, then tar's own
// complaint about the archive.
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { Unpack, type ReadEntry } from 'tar';
import { SlipwayError } from '../../shared/errors.js';
import type { Logger } from '../lib/log.js';
import { checkEntry, DEFAULT_DIR_MODE, DEFAULT_FILE_MODE, SLUG_ROOT } from './entry-policy.js';
import { DEFAULT_SLUG_LIMITS, SlugBudget, type SlugLimits } from './budget.js';
import { classifyTarError, sourceFailure } from './failures.js';

export interface ExtractOptions {
  source: Readable;
  /** Must exist and be empty; created by the caller inside the store dir. */
  stagingDir: string;
  owner: { uid: number; gid: number };
  /** Undefined when the caller does not know the digest yet (`slug fetch` without --sha256):
   * the computed one is returned and the caller files the slug under it. */
  expectedSha256: string | undefined;
  log: Logger;
  limits?: SlugLimits;
}

export interface ExtractResult {
  sha256: string;
  /** Sum of the sizes of the regular files written. */
  bytes: number;
  /** Number of regular files written. */
  files: number;
  /** Bytes of the compressed slug read from the source. */
  compressedBytes: number;
}

/**
 * Streams `source` into `stagingDir`. Resolves once everything is on disk and the digest
 * matched; rejects with a SlipwayError otherwise. On rejection the source is destroyed and
 * tar is aborted, but writes already in flight may still land in `stagingDir`: the caller
 * must move the staging dir out of the way before removing it (see store.ts).
 */
export function extractSlug(opts: ExtractOptions): Promise<ExtractResult> {
  const { source, stagingDir, owner, expectedSha256, log } = opts;
  const hash = createHash('sha256');
  const budget = new SlugBudget(opts.limits ?? DEFAULT_SLUG_LIMITS);
  let compressedBytes = 0;
  let bytes = 0;
  let files = 0;
  let symlinks = 0;
  let digest: string | undefined;
  let settled = false;
  // Entries this side decided not to extract, so tar's 'ignoredEntry' for them is expected.
  const judged = new WeakSet<object>();

  return new Promise<ExtractResult>((resolve, reject) => {
    const unpack = new Unpack({
      cwd: stagingDir,
      strict: true, // any tar warning (bad checksum, unsupported entry, ...) is an error
      preservePaths: false, // keep node-tar's own path defences as a second line
      unlink: true, // replace, never write through, whatever an earlier entry put there
      uid: owner.uid, // owners are set by the agent, never taken from the archive
      gid: owner.gid,
      preserveOwner: false,
      dmode: DEFAULT_DIR_MODE,
      fmode: DEFAULT_FILE_MODE,
      filter: (_path, e) => {
        const entry = e as ReadEntry;
        judged.add(entry);
        if (settled) return false;
        const verdict = checkEntry(entry);
        if (verdict.action === 'reject') {
          fail(new SlipwayError(verdict.code, `unsafe slug: ${verdict.reason}`));
          return false;
        }
        if (verdict.action === 'skip') return false;
        const over = budget.onEntry(verdict.relPath, verdict.kind === 'file' ? entry.size : 0);
        if (over) {
          fail(over);
          return false;
        }
        // setuid/setgid/sticky and group/other write are dropped here, before tar sees the mode.
        entry.mode = verdict.mode;
        if (verdict.kind === 'file') {
          files += 1;
          bytes += entry.size;
        } else if (verdict.kind === 'symlink') {
          symlinks += 1;
        }
        return true;
      },
    });

    // Entries tar skips without asking the filter: unknown type flags (sparse files, ACLs,
    // volume headers, ...) and oversized extended headers. Skipping them silently would
    // produce a slug that is not what was built, so they reject it.
    unpack.on('ignoredEntry', (entry: ReadEntry) => {
      if (judged.has(entry)) return;
      if (entry.meta) fail(new SlipwayError('SLUG_TOO_LARGE', `slug has an oversized ${entry.type} header`));
      else fail(new SlipwayError('SLUG_UNSAFE_ENTRY', `unsafe slug: entry ${JSON.stringify(entry.path)} has unsupported type ${entry.type}`));
    });
    // Stays attached after settling: a late error from an aborted unpack must not be unhandled.
    unpack.on('error', (err: unknown) => fail(classifyTarError(err)));
    unpack.on('close', () => void finish());
    unpack.on('drain', () => source.resume());

    source.on('data', (chunk: Buffer) => {
      if (settled) return;
      compressedBytes += chunk.length;
      hash.update(chunk);
      const over = budget.onCompressed(chunk.length);
      if (over) return fail(over);
      if (!unpack.write(chunk)) source.pause();
    });
    source.on('end', () => {
      if (settled) return;
      digest = hash.digest('hex');
      unpack.end();
    });
    source.on('error', (err: unknown) => fail(sourceFailure(err)));
    source.on('close', () => {
      if (digest === undefined) fail(sourceFailure(new Error('the slug stream closed before its end')));
    });
    // The source may have failed or closed before these listeners were attached.
    if (source.errored) fail(sourceFailure(source.errored));
    else if (source.destroyed && !source.readableEnded) fail(sourceFailure(new Error('the slug stream closed before its end')));

    function mismatch(): SlipwayError | undefined {
      if (digest === undefined || expectedSha256 === undefined || digest === expectedSha256) return undefined;
      return new SlipwayError('SLUG_CHECKSUM_MISMATCH', `slug checksum mismatch: expected sha256 ${expectedSha256}, got ${digest}`);
    }

    function fail(err: SlipwayError): void {
      if (settled) return;
      settled = true;
      source.destroy();
      unpack.abort(new Error('slug extraction aborted'));
      reject(mismatch() ?? err);
    }

    async function finish(): Promise<void> {
      if (settled) return;
      const wrong = mismatch();
      if (wrong || digest === undefined) {
        fail(wrong ?? sourceFailure(new Error('the archive ended before the slug stream')));
        return;
      }
      try {
        await ensureAppDir(stagingDir, owner);
        if (symlinks > 0) await chownSymlinks(stagingDir, owner);
      } catch (err) {
        fail(err instanceof SlipwayError ? err : classifyTarError(err));
        return;
      }
      if (settled) return;
      settled = true;
      log.debug({ sha256: digest, files, bytes, compressedBytes }, 'slug extracted');
      resolve({ sha256: digest, bytes, files, compressedBytes });
    }
  });
}

/** app/ must exist as a real directory (an archive without entries still yields /app). */
async function ensureAppDir(stagingDir: string, owner: { uid: number; gid: number }): Promise<void> {
  const app = path.join(stagingDir, SLUG_ROOT);
  const st = await fsp.lstat(app).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (st === undefined) {
    await fsp.mkdir(app, { mode: DEFAULT_DIR_MODE });
    await fsp.chown(app, owner.uid, owner.gid);
  } else if (!st.isDirectory()) {
    throw new SlipwayError('SLUG_UNSAFE_ENTRY', `unsafe slug: ${SLUG_ROOT} is not a directory`);
  }
}

/**
 * node-tar chowns files and directories but creates symlinks with the process's owner.
 * Walk the finished tree without following links and lchown every symlink, so the whole
 * slug belongs to the dyno user.
 */
async function chownSymlinks(dir: string, owner: { uid: number; gid: number }): Promise<void> {
  for (const d of await fsp.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, d.name);
    if (d.isSymbolicLink()) await fsp.lchown(p, owner.uid, owner.gid);
    else if (d.isDirectory()) await chownSymlinks(p, owner);
  }
}
