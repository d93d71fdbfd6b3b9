// The slug cache's directory, as files: where an entry and its metadata live, reading and
// writing the metadata (slug-meta.ts), listing the committed entries, removing trees safely,
// and sweeping what a run that died left half-written. The store (store.ts) decides what to
// keep; this is the only code that knows the layout:
//
//   <dir>/<sha256>/app/...            the extracted slug, an overlayfs lower layer as is
//                                     (so it holds nothing but app/); read-only once there
//   <dir>/<sha256>.json               its metadata (slug-meta.ts): written last, its presence
//                                     is what makes <sha256>/ a cache entry
//   <dir>/<sha256>.json.tmp-<random>  metadata being written (renamed over the old)
//   <dir>/.staging-<sha256>-<random>  a download in progress, or one that died; also trees
//                                     on their way out (.staging-discard-<random>)
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../../shared/log.js';
import { parseSlugMeta, serializeSlugMeta, type SlugMeta } from './slug-meta.js';

export const SHA256_RE = /^[a-f0-9]{64}$/;
const STAGING_PREFIX = '.staging-';
const META_SUFFIX = '.json';
const META_TMP_MARK = '.json.tmp-';

export interface SlugEntry {
  sha256: string;
  /** `<dir>/<sha256>`: contains exactly `app/`. */
  path: string;
  /** Sum of the sizes of the slug's regular files. */
  bytes: number;
  /** Number of regular files in the slug. */
  files: number;
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

export class SlugCacheDir {
  constructor(readonly dir: string, private readonly log: Logger) {}

  entryPath(sha: string): string {
    return path.join(this.dir, sha);
  }

  metaPath(sha: string): string {
    return path.join(this.dir, sha + META_SUFFIX);
  }

  /** A fresh staging dir name for a download of `sha` (or of a digest not known yet). */
  stagingPath(sha: string | undefined): string {
    return path.join(this.dir, `${STAGING_PREFIX}${sha ?? 'unknown'}-${randomBytes(6).toString('hex')}`);
  }

  /** mkdir -p, then remove what an earlier run left half-written: staging dirs, metadata
   * temp files, entries whose metadata was never written, metadata without its entry. */
  async sweepLeftovers(): Promise<void> {
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
  }

  /** The entry's metadata, or undefined when it is missing or unusable (logged). */
  async readMeta(sha: string): Promise<SlugMeta | undefined> {
    let text: string;
    try {
      text = await fsp.readFile(this.metaPath(sha), 'utf8');
    } catch {
      return undefined;
    }
    const r = parseSlugMeta(text);
    if ('problem' in r) {
      this.log.warn({ sha256: sha, problem: r.problem }, 'slug metadata unusable; the slug is not a cache entry');
      return undefined;
    }
    return r.meta;
  }

  /** Metadata goes to a temp file and is renamed over the old one: never half written. No
   * fsync: until the entry is durable, a host crash discards it anyway (durability.ts). */
  async writeMeta(meta: SlugMeta): Promise<void> {
    const tmp = path.join(this.dir, `${meta.sha256}${META_TMP_MARK}${randomBytes(6).toString('hex')}`);
    await fsp.writeFile(tmp, serializeSlugMeta(meta), { flag: 'wx', mode: 0o644 });
    await fsp.rename(tmp, this.metaPath(meta.sha256));
  }

  /** The committed entry for `sha`, or undefined when it is not (completely) in the cache. */
  async readEntry(sha: string): Promise<SlugEntry | undefined> {
    const meta = await this.readMeta(sha);
    try {
      const st = await fsp.lstat(this.entryPath(sha));
      if (!st.isDirectory()) return undefined;
    } catch {
      return undefined;
    }
    if (!meta || meta.sha256 !== sha) return undefined;
    return { sha256: sha, path: this.entryPath(sha), bytes: meta.bytes, files: meta.files };
  }

  has(sha256: string): boolean {
    return SHA256_RE.test(sha256) && existsSync(this.metaPath(sha256)) && existsSync(this.entryPath(sha256));
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

  /** Drops a committed entry: its metadata first (it stops being an entry), then its tree. */
  async remove(sha: string): Promise<void> {
    await fsp.rm(this.metaPath(sha), { force: true });
    await this.discard(this.entryPath(sha));
  }

  /**
   * Removes a staging (or uncommitted) dir. It is first renamed to a fresh name: writes of an
   * aborted extraction that are still in flight use the old path and fail there, so nothing
   * can reappear while the tree is being removed.
   */
  async discard(dir: string): Promise<void> {
    const trash = path.join(this.dir, `${STAGING_PREFIX}discard-${randomBytes(6).toString('hex')}`);
    try {
      await fsp.rename(dir, trash);
    } catch (err) {
      if (isMissing(err)) return;
      throw err;
    }
    await fsp.rm(trash, { recursive: true, force: true, maxRetries: 5 });
  }

  async freeBytes(): Promise<number> {
    const st = await fsp.statfs(this.dir);
    return st.bavail * st.bsize;
  }
}
