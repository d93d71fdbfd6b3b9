// The slug store: a content-addressed cache of extracted slugs under <dir>:
//
//   <dir>/<sha256>/app/...            the extracted slug, an overlayfs lower layer as is
//                                     (so it holds nothing but app/); read-only once there
//   <dir>/<sha256>.json               {sha256, bytes, files, ...}: written last, its presence
//                                     is what makes <sha256>/ a cache entry
//   <dir>/.staging-<sha256>-<random>  a download in progress, or one that died: init() and
//                                     failed downloads remove these
//
// A miss downloads once even when many dynos ask at the same moment (single flight per
// sha256), streams the bytes through SHA-256 and the extractor in one pass, and renames the
// staging dir into place only when the digest matched. A bad slug is rejected whole and
// leaves nothing behind. The store is the only writer of <dir>.
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { asSlipwayError, SlipwayError } from '../../shared/errors.js';
import { redactUrl, type Logger } from '../lib/log.js';
import { extractSlug, type ExtractResult } from './extract.js';
import { HttpSlugSource, type SlugSource } from './http-source.js';

export type { SlugSource } from './http-source.js';
export { HttpSlugSource } from './http-source.js';

export interface SlugEntry {
  sha256: string;
  /** `<dir>/<sha256>`: contains exactly `app/`. */
  path: string;
  /** Sum of the sizes of the slug's regular files. */
  bytes: number;
  /** Number of regular files in the slug. */
  files: number;
}

export interface SlugStoreOptions {
  dir: string;
  /** Every extracted file, directory and symlink is owned by this uid/gid (the dyno user). */
  owner: { uid: number; gid: number };
  /** The component's logger: the caller passes `root.child({ component: 'slugs' })` (start.ts does). */
  log: Logger;
  /** Defaults to one HttpSlugSource (http:, https:). */
  sources?: SlugSource[];
  /** Deadline of one whole download + extraction, for every source. */
  fetchTimeoutMs?: number;
}

/** Total deadline of one slug download (brief: 15 min; a 500 MB slug, Heroku's cap, at ~5 Mbit/s). */
export const DEFAULT_FETCH_TIMEOUT_MS = 15 * 60_000;

const SHA256_RE = /^[a-f0-9]{64}$/;
const STAGING_PREFIX = '.staging-';
const META_SUFFIX = '.json';
const META_TMP_MARK = '.json.tmp-';

interface SlugMeta {
  sha256: string;
  bytes: number;
  files: number;
  compressedBytes: number;
  fetchedAt: string;
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

export class SlugStore {
  private readonly dir: string;
  private readonly owner: { uid: number; gid: number };
  private readonly log: Logger;
  private readonly sources: SlugSource[];
  private readonly fetchTimeoutMs: number;
  /** One promise per sha256 being resolved (hit check or download); removed when settled. */
  private readonly inflight = new Map<string, Promise<SlugEntry & { cached: boolean }>>();
  /** Committed entries, for stats(); filled by init() and every successful ensure(). */
  private readonly index = new Map<string, SlugEntry>();

  constructor(opts: SlugStoreOptions) {
    this.dir = path.resolve(opts.dir);
    this.owner = opts.owner;
    this.log = opts.log;
    this.sources = opts.sources ?? [new HttpSlugSource({ log: this.log })];
    this.fetchTimeoutMs = opts.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
  }

  /** mkdir -p the store; remove what an earlier run left half-written; load the index. */
  async init(): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const names = new Set(await fsp.readdir(this.dir));
    for (const name of names) {
      const full = path.join(this.dir, name);
      if (name.startsWith(STAGING_PREFIX) || name.includes(META_TMP_MARK)) {
        this.log.info({ path: full }, 'removing a half-written slug left by an earlier run');
        await fsp.rm(full, { recursive: true, force: true, maxRetries: 3 });
      } else if (SHA256_RE.test(name) && !names.has(name + META_SUFFIX)) {
        // Renamed into place but the metadata never written: not a cache entry yet.
        this.log.info({ sha256: name }, 'removing a slug whose metadata was never written');
        await this.discard(full);
      } else if (name.endsWith(META_SUFFIX) && SHA256_RE.test(name.slice(0, -META_SUFFIX.length)) && !names.has(name.slice(0, -META_SUFFIX.length))) {
        await fsp.rm(full, { force: true });
      }
    }
    this.index.clear();
    for (const entry of await this.list()) this.index.set(entry.sha256, entry);
  }

  /** The extracted slug, downloading it first on a miss. Throws SlipwayError (SLUG_*). */
  ensure(ref: { url: string; sha256: string }): Promise<SlugEntry & { cached: boolean }> {
    const sha = ref.sha256;
    if (!SHA256_RE.test(sha)) {
      return Promise.reject(new SlipwayError('PROTOCOL_SCHEMA_VIOLATION', 'slug sha256 must be 64 lowercase hex digits'));
    }
    let flight = this.inflight.get(sha);
    if (!flight) {
      flight = this.resolve(ref.url, sha).finally(() => this.inflight.delete(sha));
      this.inflight.set(sha, flight);
    }
    return flight;
  }

  has(sha256: string): boolean {
    return SHA256_RE.test(sha256) && existsSync(this.metaPath(sha256)) && existsSync(this.entryPath(sha256));
  }

  stats(): { entries: number; bytes: number } {
    let bytes = 0;
    for (const e of this.index.values()) bytes += e.bytes;
    return { entries: this.index.size, bytes };
  }

  async list(): Promise<SlugEntry[]> {
    const names = await fsp.readdir(this.dir).catch((err: unknown) => {
      if (isMissing(err)) return [] as string[];
      throw err;
    });
    const out: SlugEntry[] = [];
    for (const name of names.sort()) {
      const sha = name.slice(0, -META_SUFFIX.length);
      if (!name.endsWith(META_SUFFIX) || !SHA256_RE.test(sha)) continue;
      const entry = await this.readEntry(sha);
      if (entry) out.push(entry);
    }
    return out;
  }

  private entryPath(sha: string): string {
    return path.join(this.dir, sha);
  }

  private metaPath(sha: string): string {
    return path.join(this.dir, sha + META_SUFFIX);
  }

  /** The committed entry for `sha`, or undefined when it is not (completely) in the store. */
  private async readEntry(sha: string): Promise<SlugEntry | undefined> {
    let meta: SlugMeta;
    try {
      meta = JSON.parse(await fsp.readFile(this.metaPath(sha), 'utf8')) as SlugMeta;
      const st = await fsp.lstat(this.entryPath(sha));
      if (!st.isDirectory()) return undefined;
    } catch {
      return undefined;
    }
    if (meta.sha256 !== sha || !Number.isSafeInteger(meta.bytes) || !Number.isSafeInteger(meta.files)) return undefined;
    return { sha256: sha, path: this.entryPath(sha), bytes: meta.bytes, files: meta.files };
  }

  private async resolve(url: string, sha: string): Promise<SlugEntry & { cached: boolean }> {
    const hit = await this.readEntry(sha);
    if (hit) {
      this.index.set(sha, hit);
      return { ...hit, cached: true };
    }
    // A dir without (valid) metadata is a commit that died half-way: nobody uses it.
    if (existsSync(this.entryPath(sha))) await this.discard(this.entryPath(sha));
    const entry = await this.download(url, sha);
    this.index.set(sha, entry);
    return { ...entry, cached: false };
  }

  private async download(url: string, sha: string): Promise<SlugEntry> {
    const shown = redactUrl(url);
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new SlipwayError('SLUG_UNSUPPORTED_SOURCE', `slug URL is not a valid URL: ${shown}`);
    }
    const source = this.sources.find((s) => s.schemes.includes(parsed.protocol));
    if (!source) throw new SlipwayError('SLUG_UNSUPPORTED_SOURCE', `slug URL scheme ${parsed.protocol} is not supported`);

    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const staging = path.join(this.dir, `${STAGING_PREFIX}${sha}-${randomBytes(6).toString('hex')}`);
    await fsp.mkdir(staging, { mode: 0o755 });
    const started = Date.now();
    const deadline = new AbortController();
    const timer = setTimeout(() => {
      deadline.abort(new SlipwayError('SLUG_FETCH_FAILED', `slug download from ${shown} exceeded its deadline of ${this.fetchTimeoutMs} ms`));
    }, this.fetchTimeoutMs);
    this.log.info({ sha256: sha, url: shown }, 'slug download started');
    try {
      const stream = await source.open(parsed, deadline.signal);
      deadline.signal.addEventListener('abort', () => stream.destroy(deadline.signal.reason as Error), { once: true });
      if (deadline.signal.aborted) stream.destroy(deadline.signal.reason as Error);
      const result = await extractSlug({ source: stream, stagingDir: staging, owner: this.owner, expectedSha256: sha, log: this.log });
      const entry = await this.commit(staging, sha, result);
      this.log.info({ sha256: sha, url: shown, bytes: result.bytes, files: result.files, compressedBytes: result.compressedBytes, ms: Date.now() - started }, 'slug ready');
      return entry;
    } catch (err) {
      const failure = asSlipwayError(err);
      await this.discard(staging).catch((rmErr: unknown) => {
        this.log.error({ sha256: sha, path: staging, err: rmErr }, 'could not remove a failed slug staging dir');
      });
      this.log.warn({ sha256: sha, url: shown, err: failure, ms: Date.now() - started }, 'slug download failed');
      throw failure;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Staging dir -> <sha256>/ (atomic), then the metadata, written to a temp file and fsynced. */
  private async commit(staging: string, sha: string, result: ExtractResult): Promise<SlugEntry> {
    await fsp.rename(staging, this.entryPath(sha));
    const meta: SlugMeta = { sha256: sha, bytes: result.bytes, files: result.files, compressedBytes: result.compressedBytes, fetchedAt: new Date().toISOString() };
    const tmp = path.join(this.dir, `${sha}${META_TMP_MARK}${randomBytes(6).toString('hex')}`);
    const fh = await fsp.open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(JSON.stringify(meta) + '\n');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, this.metaPath(sha));
    return { sha256: sha, path: this.entryPath(sha), bytes: result.bytes, files: result.files };
  }

  /**
   * Removes a staging (or uncommitted) dir. It is first renamed to a fresh name: writes of an
   * aborted extraction that are still in flight use the old path and fail there, so nothing
   * can reappear while the tree is being removed.
   */
  private async discard(dir: string): Promise<void> {
    const trash = path.join(this.dir, `${STAGING_PREFIX}discard-${randomBytes(6).toString('hex')}`);
    try {
      await fsp.rename(dir, trash);
    } catch (err) {
      if (isMissing(err)) return;
      throw err;
    }
    await fsp.rm(trash, { recursive: true, force: true, maxRetries: 5 });
  }
}
