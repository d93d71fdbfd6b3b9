// One pass over a stack archive (plain or gzipped tar), in the order of agent/slugs/extract.ts:
//
//   file -> SHA-256 (of the archive's bytes as given)
//        -> gunzip (when the first bytes are gzip's magic)
//        -> DeviceEntryFilter: device and FIFO entries are removed (tar-filter.ts)
//        -> node-tar's Parser: StackEntryJudge judges every header (entry-policy.ts)
//        -> GNU tar, as root, writes into the staging dir with the archive's numeric owners
//           and modes (a stack is an OS image whose files are root's)
//
// The Parser is synchronous, so every header in a chunk is judged before the chunk is written
// to GNU tar; a rejection kills GNU tar before the next one. The promise settles only after
// GNU tar has exited, so the caller may remove the staging dir at once.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import { createGunzip, type Gunzip } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import { SlipwayError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import { StackEntryJudge } from './entry-policy.js';
import { STACK_MARKER } from './stacks.js';
import { DeviceEntryFilter } from './tar-filter.js';

/**
 * The whole extraction's bound. Measured on this machine kind (Debian 12 VM, 2026-11-22): the
 * Debian bookworm minbase rootfs of scripts/build-debian-stack.sh (121 MB tar, 53 MB gzipped,
 * 5,235 files) imports in 1.1 s either way, flush included: ~100 MB/s, so 3 GB in about 30 s.
 * Ten minutes leaves room for multi-GB images on slow volumes and still ends a wedged read (a
 * FIFO nobody writes, a stalled network file system).
 */
export const STACK_EXTRACT_TIMEOUT_MS = 10 * 60_000;

const GUNZIP_CHUNK = 256 * 1024;
const STDERR_KEEP = 4096;

export interface StackExtractResult {
  sha256: string;
  /** Regular files written (hard links and a `.slipway-stack` not counted), and their bytes. */
  files: number;
  bytes: number;
  /** Device and FIFO entries that were not created. */
  skipped: number;
}

export interface StackExtractOptions {
  archive: string;
  /** Must exist and be empty; created by the caller beside the stack's final place. */
  stagingDir: string;
  log: Logger;
  timeoutMs?: number;
  /** Aborting stops the extraction (the CLI's Ctrl-C); the promise rejects once GNU tar is gone. */
  signal?: AbortSignal;
  /** GNU tar; found on PATH by default. */
  tarPath?: string;
}

function invalid(message: string, cause?: unknown): SlipwayError {
  return new SlipwayError('STACK_INVALID', message, cause === undefined ? {} : { cause });
}

export async function extractStack(opts: StackExtractOptions): Promise<StackExtractResult> {
  const { archive, stagingDir, log } = opts;
  const timeoutMs = opts.timeoutMs ?? STACK_EXTRACT_TIMEOUT_MS;
  const st = await fsp.stat(archive).catch((err: unknown) => {
    throw invalid(`cannot read the stack archive ${archive}: ${(err as Error).message}`, err);
  });
  if (st.isDirectory()) throw invalid(`the stack archive ${archive} is a directory, not a tar file`);

  const hash = createHash('sha256');
  const filter = new DeviceEntryFilter();
  const judge = new StackEntryJudge();
  let files = 0;
  let bytes = 0;
  let failure: SlipwayError | undefined;
  let stderr = '';

  return new Promise<StackExtractResult>((resolve, reject) => {
    const source = createReadStream(archive);
    let gunzip: Gunzip | undefined;
    /** Undecided until the first two bytes are in: gzip or plain tar. */
    let head: Buffer | undefined = Buffer.alloc(0);
    let sha256: string | undefined;
    let settled = false;

    const parser = new Parser({
      strict: true,
      onReadEntry: (e: ReadEntry) => {
        e.resume();
        if (failure) return;
        const announced = filter.passed.shift();
        if (announced === undefined || announced.size !== e.size) {
          return fail(invalid(`stack archive is ambiguous: entry ${JSON.stringify(e.path)} has ${e.size} data bytes for node-tar and ${announced?.size ?? 'none'} by its header`));
        }
        const verdict = judge.check(e);
        if (verdict.action === 'reject') return fail(invalid(`unsafe stack archive: ${verdict.reason}`));
        // The archive's own marker, if any, is replaced by the import's: not counted.
        if (verdict.action === 'extract' && verdict.kind === 'file' && verdict.relPath !== STACK_MARKER) {
          files += 1;
          bytes += e.size;
        }
      },
    });
    parser.on('ignoredEntry', (e: ReadEntry) => fail(invalid(`unsafe stack archive: entry ${JSON.stringify(e.path)} has unsupported type ${e.type}`)));
    parser.on('error', (err: unknown) => fail(invalid(`stack archive is not a readable tar: ${(err as Error).message}`, err)));

    const tar = spawn(opts.tarPath ?? 'tar', [
      '-x', '-f', '-', '--numeric-owner', '--same-owner', '--same-permissions', '--no-acls', '--no-xattrs', '--no-selinux',
    ], { cwd: stagingDir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' }, stdio: ['pipe', 'ignore', 'pipe'] });
    tar.stderr.on('data', (b: Buffer) => { if (stderr.length < STDERR_KEEP) stderr += b.toString('utf8'); });
    tar.stdin.on('error', () => undefined); // EPIPE after a kill is expected
    tar.on('error', (err) => fail(new SlipwayError('INTERNAL', `cannot run GNU tar: ${err.message}`, { cause: err })));
    tar.on('close', (code) => onTarExit(code));

    const timer = setTimeout(() => fail(new SlipwayError('RUNTIME_TIMEOUT', `stack import of ${archive} did not finish within ${timeoutMs} ms`)), timeoutMs);
    const onAbort = () => fail(new SlipwayError('INTERNAL', `stack import of ${archive} was interrupted`));
    if (opts.signal?.aborted) queueMicrotask(onAbort);
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    /** Plain tar bytes: filter -> judge -> GNU tar, with backpressure on the upstream. */
    const plain = (chunk: Buffer) => {
      let out: Buffer;
      try {
        out = filter.write(chunk);
      } catch (err) {
        return fail(err as SlipwayError);
      }
      if (out.length === 0) return;
      parser.write(out);
      if (failure) return; // this chunk held a rejected header: it never reaches GNU tar
      if (!tar.stdin.write(out)) (gunzip ?? source).pause();
    };
    const plainEnd = () => {
      if (failure) return;
      const rest = filter.end();
      if (rest.length) parser.write(rest);
      parser.end();
      if (failure) return;
      if (rest.length) tar.stdin.write(rest);
      tar.stdin.end();
    };
    tar.stdin.on('drain', () => (gunzip ?? source).resume());

    const start = (first: Buffer) => {
      if (first[0] === 0x1f && first[1] === 0x8b) {
        gunzip = createGunzip({ chunkSize: GUNZIP_CHUNK });
        gunzip.on('data', (b: Buffer) => { if (!failure) plain(b); });
        gunzip.on('end', plainEnd);
        gunzip.on('drain', () => source.resume());
        gunzip.on('error', (err: unknown) => fail(invalid(`stack archive is not a readable gzip: ${(err as Error).message}`, err)));
      }
    };
    const feed = (chunk: Buffer) => {
      if (!gunzip) return plain(chunk);
      if (!gunzip.write(chunk)) source.pause();
    };
    source.on('data', (data: string | Buffer) => {
      if (failure) return;
      const chunk = data as Buffer; // no encoding set: always a Buffer
      hash.update(chunk);
      if (head !== undefined) {
        head = Buffer.concat([head, chunk]);
        if (head.length < 2) return;
        const first = head;
        head = undefined;
        start(first);
        return feed(first);
      }
      feed(chunk);
    });
    source.on('end', () => {
      if (failure) return;
      sha256 = hash.digest('hex');
      if (head !== undefined) { // fewer than two bytes in all
        const first = head;
        head = undefined;
        if (first.length) feed(first);
      }
      if (gunzip) gunzip.end();
      else plainEnd();
    });
    source.on('error', (err) => fail(invalid(`cannot read the stack archive ${archive}: ${err.message}`, err)));

    function fail(err: SlipwayError): void {
      if (failure) return;
      failure = err;
      source.destroy();
      gunzip?.destroy();
      tar.kill('SIGKILL');
      if (tar.exitCode !== null || tar.signalCode !== null) settle();
    }

    function settle(result?: StackExtractResult): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (result) resolve(result);
      else reject(failure ?? new SlipwayError('INTERNAL', 'extraction ended with neither a result nor a failure'));
    }

    function onTarExit(code: number | null): void {
      if (failure) return settle();
      if (code !== 0) {
        const text = stderr.trim().slice(0, 500);
        failure = /No space left|Disk quota/i.test(text)
          ? new SlipwayError('INTERNAL', `the stacks file system is full: ${text}`)
          : invalid(`GNU tar could not extract the stack archive (exit ${code ?? 'signal'}): ${text}`);
        return settle();
      }
      if (sha256 === undefined) {
        failure = invalid('GNU tar finished before the archive was read to its end');
        return settle();
      }
      log.debug({ sha256, files, bytes, skipped: filter.skipped }, 'stack archive extracted');
      settle({ sha256, files, bytes, skipped: filter.skipped });
    }
  });
}
