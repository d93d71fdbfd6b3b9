// One pass over a slug's bytes, in three stages that see every byte in this order:
//
//   source -> SHA-256 (of the compressed bytes)
//          -> gunzip (node's zlib, off the main thread); the expansion budget judges every
//             chunk it puts out before it goes further
//          -> node-tar's Parser: the entry policy and the budgets judge every header
//          -> GNU tar (`tar -x`), running as the dyno user in the staging dir, writes the files
//
// With `cgroup`, GNU tar runs in the extraction cgroup (extract-cgroup.ts), whose CPU and IO
// weights sit below the dynos': it is moved there in the same turn of the event loop that
// spawned it, before it can have been fed a byte.
//
// The Parser is synchronous: when a plain chunk has been written to it, every header inside
// that chunk has been judged. Only then does the chunk go to GNU tar, so GNU tar never
// receives the bytes of an entry the policy has not approved; a rejection kills it before
// the next chunk. GNU tar runs unprivileged (the dyno user, umask 022): it cannot chown,
// create devices or write where that user cannot, and it drops setuid/setgid bits; its own
// defences (no `..`, delayed symlinks) are a second line. Owners are the dyno user's by
// construction, never the archive's.
//
// Why GNU tar writes and not node-tar: node-tar's Unpack sequences async fs calls per entry
// and took 10-45 s for a 10,000-file, 150 MB slug where GNU tar took 2-8 s on this machine
// (scripts/bench/slug.sh); parsing alone in node costs ~1.4 s.
//
// Precedence of failures: a known digest that differs wins (the bytes were not the slug we
// were asked for), then a policy or budget violation, then a source (network) failure, then
// what the gzip/tar layers say about the archive.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import { SlipwayError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import { checkEntry, DEFAULT_DIR_MODE, SLUG_ROOT } from './entry-policy.js';
import { DEFAULT_SLUG_LIMITS, SlugBudget, type SlugLimits } from './budget.js';
import { ExtractCgroup, type ExtractCgroupOptions } from './extract-cgroup.js';
import { classifyTarError, sourceFailure } from './failures.js';

export interface ExtractOptions {
  source: Readable;
  /** Must exist, be empty and be owned by `owner`; created by the caller inside the store dir. */
  stagingDir: string;
  owner: { uid: number; gid: number };
  /** Undefined when the caller does not know the digest yet (`slug fetch` without --sha256):
   * the computed one is returned and the caller files the slug under it. */
  expectedSha256: string | undefined;
  log: Logger;
  limits?: SlugLimits;
  /** The compressed size the source states (Content-Length, a file's size), if it does: the
   * expansion bound is then judged at each header too, before the entry's data (budget.ts). */
  declaredBytes?: number;
  /** Where GNU tar's cgroup goes (the agent's cgroupParent); none: tar stays in the
   * agent's cgroups. */
  cgroup?: ExtractCgroupOptions;
  /** GNU tar; found on PATH by default. */
  tarPath?: string;
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

/** gunzip output chunk: large enough that the per-chunk cost (parse, pipe write) is small. */
const GUNZIP_CHUNK = 256 * 1024;
const STDERR_KEEP = 4096;
/** Modes GNU tar (unprivileged, umask 022) would write differently from the policy's. */
const NEEDS_CHMOD = 0o7022;

/**
 * Streams `source` into `stagingDir`. Resolves once everything is on disk and the digest
 * matched; rejects with a SlipwayError otherwise, and only after the writer has exited, so
 * the caller may remove the staging dir at once.
 */
export function extractSlug(opts: ExtractOptions): Promise<ExtractResult> {
  const { source, stagingDir, owner, expectedSha256, log } = opts;
  const hash = createHash('sha256');
  const budget = new SlugBudget(opts.limits ?? DEFAULT_SLUG_LIMITS, opts.declaredBytes);
  let compressedBytes = 0;
  let bytes = 0;
  let files = 0;
  let digest: string | undefined;
  let settled = false;
  let failure: SlipwayError | undefined;
  let stderr = '';
  /** GNU tar's cgroup, once made; removed when the extraction settles. */
  let cgroup: ExtractCgroup | undefined;
  /** Symlinks seen so far: no later entry may be written through one (or replace it). */
  const symlinks = new Set<string>();
  /** Entries whose mode GNU tar will not set the way the policy wants: fixed afterwards. */
  const chmods: { relPath: string; mode: number }[] = [];

  return new Promise<ExtractResult>((resolve, reject) => {
    const gunzip = createGunzip({ chunkSize: GUNZIP_CHUNK });
    const parser = new Parser({
      strict: true,
      onReadEntry: (e: ReadEntry) => {
        e.resume();
        if (failure) return;
        const verdict = checkEntry(e);
        if (verdict.action === 'reject') return fail(new SlipwayError(verdict.code, `unsafe slug: ${verdict.reason}`));
        if (verdict.action === 'skip') return;
        const through = throughSymlink(verdict.relPath, symlinks);
        if (through !== undefined) {
          return fail(new SlipwayError('SLUG_UNSAFE_ENTRY', `unsafe slug: entry ${JSON.stringify(e.path)} would be written through or over the symlink ${JSON.stringify(through)}`));
        }
        if (verdict.kind === 'symlink') symlinks.add(verdict.relPath);
        const over = budget.onEntry(verdict.relPath, verdict.kind === 'file' ? e.size : 0);
        if (over) return fail(over);
        if (verdict.kind === 'file') {
          files += 1;
          bytes += e.size;
        }
        if (verdict.kind !== 'symlink' && verdict.mode !== undefined && ((e.mode ?? 0) & NEEDS_CHMOD || (verdict.kind === 'directory' && ((e.mode ?? 0) & 0o700) !== 0o700))) {
          chmods.push({ relPath: verdict.relPath, mode: verdict.mode });
        }
      },
    });
    // Meta entries node-tar consumes and entry types it does not know never reach
    // onReadEntry; in strict mode the latter are errors, and an ignored entry rejects too,
    // so a slug cannot come out quietly different from what was built.
    parser.on('ignoredEntry', (e: ReadEntry) => fail(new SlipwayError('SLUG_UNSAFE_ENTRY', `unsafe slug: entry ${JSON.stringify(e.path)} has unsupported type ${e.type}`)));
    parser.on('error', (err: unknown) => fail(classifyTarError(err)));

    const tar = spawn('/bin/sh', ['-c', 'umask 022 && exec "$0" "$@"', opts.tarPath ?? 'tar',
      '-x', '-f', '-', '--no-same-owner', '--no-same-permissions', '--no-acls', '--no-xattrs', '--no-selinux'], {
      cwd: stagingDir,
      uid: owner.uid,
      gid: owner.gid,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' },
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    tar.stderr.on('data', (b: Buffer) => { if (stderr.length < STDERR_KEEP) stderr += b.toString('utf8'); });
    tar.stdin.on('error', () => undefined); // EPIPE after a kill is expected
    tar.on('error', (err) => fail(new SlipwayError('INTERNAL', `cannot run tar: ${err.message}`, { cause: err })));
    tar.on('close', (code) => void onTarExit(code));
    if (opts.cgroup && tar.pid !== undefined) {
      try {
        cgroup = new ExtractCgroup(opts.cgroup);
        cgroup.join(tar.pid);
        log.debug({ cgroup: cgroup.path, pid: tar.pid, weights: cgroup.weights }, 'slug extraction in its cgroup');
      } catch (err) {
        fail(err instanceof SlipwayError ? err : new SlipwayError('INTERNAL', `cannot set up the slug extraction cgroup: ${(err as Error).message}`, { cause: err }));
      }
    }

    // source -> hash -> gunzip, with backpressure.
    source.on('data', (chunk: Buffer) => {
      if (failure) return;
      compressedBytes += chunk.length;
      hash.update(chunk);
      const over = budget.onCompressed(chunk.length);
      if (over) return fail(over);
      if (!gunzip.write(chunk)) source.pause();
    });
    gunzip.on('drain', () => source.resume());
    source.on('end', () => {
      if (failure) return;
      digest = hash.digest('hex');
      gunzip.end();
    });
    source.on('error', (err: unknown) => fail(sourceFailure(err)));
    source.on('close', () => {
      if (digest === undefined) fail(sourceFailure(new Error('the slug stream closed before its end')));
    });
    // The source may have failed or closed before these listeners were attached.
    if (source.errored) fail(sourceFailure(source.errored));
    else if (source.destroyed && !source.readableEnded) fail(sourceFailure(new Error('the slug stream closed before its end')));

    // gunzip -> judge (synchronously) -> GNU tar, with backpressure.
    gunzip.on('data', (plain: Buffer) => {
      if (failure) return;
      const expands = budget.onPlain(plain.length);
      if (expands) return fail(expands);
      parser.write(plain);
      if (failure) return; // this chunk held a rejected header: it never reaches tar
      if (!tar.stdin.write(plain)) gunzip.pause();
    });
    tar.stdin.on('drain', () => gunzip.resume());
    gunzip.on('end', () => {
      if (failure) return;
      parser.end();
      if (!failure) tar.stdin.end();
    });
    gunzip.on('error', (err: unknown) => fail(new SlipwayError('SLUG_CORRUPT', `slug is not a readable gzipped tar: ${(err as Error).message}`, { cause: err })));

    function mismatch(): SlipwayError | undefined {
      if (digest === undefined || expectedSha256 === undefined || digest === expectedSha256) return undefined;
      return new SlipwayError('SLUG_CHECKSUM_MISMATCH', `slug checksum mismatch: expected sha256 ${expectedSha256}, got ${digest}`);
    }

    /** Stops everything; the promise rejects once tar has exited (onTarExit). */
    function fail(err: SlipwayError): void {
      if (failure) return;
      failure = err;
      source.destroy();
      gunzip.destroy();
      tar.kill('SIGKILL');
      if (tar.exitCode !== null || tar.signalCode !== null) settle();
    }

    /** Tar has exited (or never ran): its cgroup is empty and goes before the caller hears. */
    function settle(result?: ExtractResult): void {
      if (settled) return;
      settled = true;
      try {
        cgroup?.release();
      } catch (err) {
        log.error({ err, cgroup: cgroup?.path }, 'could not remove the slug extraction cgroup');
      }
      if (result) resolve(result);
      else reject(mismatch() ?? failure ?? new SlipwayError('INTERNAL', 'extraction ended with neither a result nor a failure'));
    }

    async function onTarExit(code: number | null): Promise<void> {
      if (failure) return settle();
      if (code !== 0) {
        const text = stderr.trim().slice(0, 500);
        if (/No space left|Disk quota/i.test(text)) failure = new SlipwayError('SLUG_DISK_FULL', `the slug cache's file system is full: ${text}`);
        else failure = new SlipwayError('SLUG_CORRUPT', `tar could not extract the slug (exit ${code ?? 'signal'}): ${text}`);
        return settle();
      }
      const wrong = mismatch();
      if (wrong || digest === undefined) {
        failure = wrong ?? sourceFailure(new Error('the archive ended before the slug stream'));
        return settle();
      }
      try {
        await ensureAppDir(stagingDir, owner);
        // Deepest first, so a directory made read-only does not block the entries below it.
        for (const c of chmods.sort((a, b) => b.relPath.length - a.relPath.length)) await fsp.chmod(path.join(stagingDir, c.relPath), c.mode);
      } catch (err) {
        failure = err instanceof SlipwayError ? err : classifyTarError(err);
        return settle();
      }
      log.debug({ sha256: digest, files, bytes, compressedBytes }, 'slug extracted');
      settle({ sha256: digest, bytes, files, compressedBytes });
    }
  });
}

/** The earlier symlink at `relPath` or at one of its ancestors, if any. */
export function throughSymlink(relPath: string, symlinks: ReadonlySet<string>): string | undefined {
  if (symlinks.size === 0) return undefined;
  let prefix = '';
  for (const segment of relPath.split('/')) {
    prefix = prefix ? `${prefix}/${segment}` : segment;
    if (symlinks.has(prefix)) return prefix;
  }
  return undefined;
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
