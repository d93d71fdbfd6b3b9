// The slug store: a content-addressed cache of extracted slugs under <dir>, laid out by
// cache-dir.ts (one dir per slug, its metadata file written last).
//
// A miss downloads once even when many dynos ask at the same moment (single flight per
// sha256), streams the bytes through SHA-256 and the extractor in one pass, and renames the
// staging dir into place only when the digest matched. A bad slug is rejected whole and
// leaves nothing behind. Transient failures are retried with backoff (retry.ts) within one
// total deadline. The store is the only writer of <dir>.
//
// Disk: the cache stays under `budgetBytes` and keeps `floorBytes` free on its file system
// by evicting least-recently-used slugs (eviction.ts). A slug in use is never evicted: pinned
// by a dyno of this agent, or mounted in any overlay (in-use.ts), which also protects the
// slugs of running dynos from `slipway-agent slug gc` run beside the agent. The last use of a
// slug is the mtime of its metadata file, so LRU order survives agent restarts.
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { asSlipwayError, SlipwayError } from '../../shared/errors.js';
import { redactUrl, type Logger } from '../../shared/log.js';
import { extractSlug, type ExtractResult } from './extract.js';
import { HttpSlugSource, type SlugSource } from './http-source.js';
import { DEFAULT_SLUG_LIMITS, type SlugLimits } from './budget.js';
import { planEviction, type CacheLimits } from './eviction.js';
import { readMountedSlugs } from './in-use.js';
import { currentBootId, entrySurvives, flushFileSystem } from './durability.js';
import { DEFAULT_RETRY_POLICY, retryDelayMs, type RetryPolicy } from './retry.js';
import type { SlugMeta } from './slug-meta.js';
import { SHA256_RE, SlugCacheDir, type SlugEntry } from './cache-dir.js';

export type { SlugSource } from './http-source.js';
export { HttpSlugSource } from './http-source.js';

export type { SlugEntry } from './cache-dir.js';

export interface SlugStoreOptions {
  dir: string;
  /** Every extracted file, directory and symlink is owned by this uid/gid (the dyno user). */
  owner: { uid: number; gid: number };
  /** The component's logger: the caller passes `root.child({ component: 'slugs' })` (start.ts does). */
  log: Logger;
  /** Defaults to one HttpSlugSource (http:, https:). */
  sources?: SlugSource[];
  /** Deadline of one whole download + extraction (all attempts), for every source. */
  fetchTimeoutMs?: number;
  limits?: SlugLimits;
  retry?: RetryPolicy;
  cache?: CacheLimits;
  /** Test seam: how retries wait. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Test seams: the boot id (durability.ts) and how the file system is flushed. */
  bootId?: string;
  flush?: (dir: string) => Promise<void>;
}

/** Disk limits of the cache. 20 GiB holds ~40 of Heroku's largest slugs unpacked, far more of
 * typical ones; 2 GiB free keeps dynos' upper dirs and logs on the same disk writable. */
export const DEFAULT_CACHE_LIMITS: CacheLimits = { budgetBytes: 20 * 1024 ** 3, floorBytes: 2 * 1024 ** 3 };
/** Room asked for before writing a slug whose compressed size is known: unpacked slugs are
 * typically 2-4x their compressed size. Unknown sizes ask for nothing beyond the floor. */
export const EXPANSION_ESTIMATE = 4;

export interface CacheUsage {
  entries: number;
  bytes: number;
  budgetBytes: number;
  freeBytes: number;
  slugs: { sha256: string; bytes: number; lastUsed: string; inUse: boolean }[];
}

/** Total deadline of one slug download (brief: 15 min; a 500 MB slug, Heroku's cap, at ~5 Mbit/s). */
export const DEFAULT_FETCH_TIMEOUT_MS = 15 * 60_000;

export class SlugStore {
  private readonly dir: string;
  private readonly files: SlugCacheDir;
  private readonly owner: { uid: number; gid: number };
  private readonly log: Logger;
  private readonly sources: SlugSource[];
  private readonly fetchTimeoutMs: number;
  /** One promise per sha256 being resolved (hit check or download); removed when settled. */
  private readonly inflight = new Map<string, Promise<SlugEntry & { cached: boolean }>>();
  /** Committed entries, for stats(); filled by init() and every successful ensure(). */
  private readonly index = new Map<string, SlugEntry>();
  /** Last use per committed slug (ms); persisted as the metadata file's mtime. */
  private readonly lastUsed = new Map<string, number>();
  /** sha256 -> owners (dyno ids) that use it. */
  private readonly pins = new Map<string, Set<string>>();
  private readonly limits: SlugLimits;
  private readonly retry: RetryPolicy;
  private readonly cacheLimits: CacheLimits;
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  private readonly bootId: string;
  private readonly flush: (dir: string) => Promise<void>;
  /** Background flushes of newly committed entries (see durability.ts), by sha256. */
  private readonly settling = new Map<string, Promise<void>>();

  constructor(opts: SlugStoreOptions) {
    this.dir = path.resolve(opts.dir);
    this.owner = opts.owner;
    this.log = opts.log;
    this.files = new SlugCacheDir(this.dir, this.log);
    this.sources = opts.sources ?? [new HttpSlugSource({ log: this.log })];
    this.fetchTimeoutMs = opts.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
    this.limits = opts.limits ?? DEFAULT_SLUG_LIMITS;
    this.retry = opts.retry ?? DEFAULT_RETRY_POLICY;
    this.cacheLimits = opts.cache ?? DEFAULT_CACHE_LIMITS;
    this.sleep = opts.sleep ?? abortableSleep;
    this.bootId = opts.bootId ?? currentBootId();
    this.flush = opts.flush ?? flushFileSystem;
  }

  get directory(): string {
    return this.dir;
  }

  /** mkdir -p the store; remove what an earlier run left half-written; load the index. */
  async init(): Promise<void> {
    await this.files.sweepLeftovers();
    this.index.clear();
    for (const entry of await this.list()) {
      const meta = await this.files.readMeta(entry.sha256);
      if (meta && !entrySurvives(meta, this.bootId)) {
        // Committed in an earlier boot and never flushed: the host went down before writeback,
        // so its files may be empty or short. Download it again rather than run it.
        this.log.warn({ sha256: entry.sha256, bootId: meta.bootId }, 'discarding a slug committed just before the host went down (its data was never flushed)');
        await this.files.remove(entry.sha256);
        continue;
      }
      this.index.set(entry.sha256, entry);
      const st = await fsp.stat(this.files.metaPath(entry.sha256)).catch(() => undefined);
      this.lastUsed.set(entry.sha256, st?.mtimeMs ?? 0);
      if (meta && meta.durable !== true) this.settle(entry.sha256);
    }
  }

  /** Resolves once every committed slug's background flush has finished (or failed). The
   * CLI waits for it before exiting; tests use it. */
  async settled(): Promise<void> {
    while (this.settling.size > 0) await Promise.all(this.settling.values());
  }

  /**
   * The extracted slug, downloading it first on a miss. Throws SlipwayError (SLUG_*).
   * `pin` names the user (a dyno id) that holds the slug until unpin(): it is pinned before
   * the promise resolves, so no eviction can slip in between. Without a sha256 (the CLI's
   * `slug fetch URL`) the slug is downloaded and filed under the digest it turns out to have.
   */
  async ensure(ref: { url: string; sha256?: string | undefined }, options: { pin?: string } = {}): Promise<SlugEntry & { cached: boolean }> {
    const sha = ref.sha256;
    if (sha !== undefined && !SHA256_RE.test(sha)) {
      throw new SlipwayError('PROTOCOL_SCHEMA_VIOLATION', 'slug sha256 must be 64 lowercase hex digits');
    }
    const key = sha ?? `url:${ref.url}`;
    let flight = this.inflight.get(key);
    if (!flight) {
      flight = this.resolve(ref.url, sha).finally(() => this.inflight.delete(key));
      this.inflight.set(key, flight);
    }
    const entry = await flight;
    this.touch(entry.sha256);
    if (options.pin !== undefined) this.pin(entry.sha256, options.pin);
    return entry;
  }

  pin(sha256: string, owner: string): void {
    let owners = this.pins.get(sha256);
    if (!owners) this.pins.set(sha256, (owners = new Set()));
    owners.add(owner);
  }

  unpin(sha256: string, owner: string): void {
    const owners = this.pins.get(sha256);
    owners?.delete(owner);
    if (owners?.size === 0) this.pins.delete(sha256);
  }

  /** Cache contents for the capacity report, diagnostics and `slug ls`. */
  async usage(): Promise<CacheUsage> {
    const mounted = await readMountedSlugs(this.dir).catch(() => new Set<string>());
    const slugs = [...this.index.values()]
      .map((e) => ({ sha256: e.sha256, bytes: e.bytes, lastUsed: new Date(this.lastUsed.get(e.sha256) ?? 0).toISOString(), inUse: this.pins.has(e.sha256) || mounted.has(e.sha256) }))
      .sort((a, b) => b.lastUsed.localeCompare(a.lastUsed));
    const { entries, bytes } = this.stats();
    return { entries, bytes, budgetBytes: this.cacheLimits.budgetBytes, freeBytes: await this.files.freeBytes(), slugs };
  }

  /**
   * Evicts least-recently-used slugs nobody uses until the cache is under its budget and the
   * file system above its floor, with `needBytes` of room. Returns what it evicted and whether
   * the room is there.
   */
  async gc(needBytes = 0): Promise<{ evicted: string[]; fits: boolean }> {
    const mounted = await readMountedSlugs(this.dir).catch(() => new Set<string>());
    const slugs = [...this.index.values()].map((e) => ({
      sha256: e.sha256, bytes: e.bytes, lastUsedMs: this.lastUsed.get(e.sha256) ?? 0,
      // A slug being flushed is spared too: its metadata is about to be rewritten.
      inUse: this.pins.has(e.sha256) || mounted.has(e.sha256) || this.inflight.has(e.sha256) || this.settling.has(e.sha256),
    }));
    const plan = planEviction(slugs, this.cacheLimits, await this.files.freeBytes(), needBytes);
    for (const sha of plan.evict) await this.evict(sha);
    if (plan.evict.length > 0) this.log.info({ evicted: plan.evict, needBytes, fits: plan.fits }, 'evicted least recently used slugs');
    return { evicted: plan.evict, fits: plan.fits };
  }

  /** Drops a committed slug: its metadata first (it stops being an entry), then its tree. */
  private async evict(sha: string): Promise<void> {
    this.index.delete(sha);
    this.lastUsed.delete(sha);
    await this.files.remove(sha);
  }

  /** Marks a use now; the metadata file's mtime carries it across restarts (best effort). */
  private touch(sha: string): void {
    const now = Date.now();
    this.lastUsed.set(sha, now);
    const t = new Date(now);
    fsp.utimes(this.files.metaPath(sha), t, t).catch(() => undefined);
  }

  has(sha256: string): boolean {
    return this.files.has(sha256);
  }

  stats(): { entries: number; bytes: number } {
    let bytes = 0;
    for (const e of this.index.values()) bytes += e.bytes;
    return { entries: this.index.size, bytes };
  }

  list(): Promise<SlugEntry[]> {
    return this.files.list();
  }

  private async resolve(url: string, sha: string | undefined): Promise<SlugEntry & { cached: boolean }> {
    if (sha !== undefined) {
      const hit = await this.files.readEntry(sha);
      if (hit) {
        this.index.set(sha, hit);
        return { ...hit, cached: true };
      }
      // A dir without (valid) metadata is a commit that died half-way: nobody uses it.
      if (existsSync(this.files.entryPath(sha))) await this.files.discard(this.files.entryPath(sha));
    }
    const { entry, cached } = await this.download(url, sha);
    this.index.set(entry.sha256, entry);
    // The new slug may have taken the cache over its budget: make room again now, sparing it
    // (still in flight, so in use) and everything pinned or mounted.
    if (!cached) await this.gc().catch((err: unknown) => this.log.warn({ err }, 'slug cache gc after a download failed'));
    return { ...entry, cached };
  }

  private async download(url: string, sha: string | undefined): Promise<{ entry: SlugEntry; cached: boolean }> {
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
    const started = Date.now();
    const deadline = new AbortController();
    const timer = setTimeout(() => {
      deadline.abort(new SlipwayError('SLUG_FETCH_FAILED', `slug download from ${shown} exceeded its deadline of ${this.fetchTimeoutMs} ms`));
    }, this.fetchTimeoutMs);
    const log = this.log.child({ sha256: sha, url: shown });
    log.info('slug download started');
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          const done = await this.attempt(parsed, source, sha, deadline.signal);
          log.info({ sha256: done.entry.sha256, bytes: done.entry.bytes, files: done.entry.files, compressedBytes: done.compressedBytes, attempt, ms: Date.now() - started }, 'slug ready');
          return done;
        } catch (err) {
          const failure = asSlipwayError(deadline.signal.aborted ? deadline.signal.reason : err);
          const delay = deadline.signal.aborted ? undefined : retryDelayMs(attempt, failure, this.retry);
          if (delay === undefined) {
            log.warn({ err: failure, code: failure.code, attempt, ms: Date.now() - started }, 'slug download failed');
            throw failure;
          }
          log.warn({ code: failure.code, err: failure.message, attempt, retryInMs: delay }, 'slug download failed; retrying');
          await this.sleep(delay, deadline.signal).catch(() => undefined);
          if (deadline.signal.aborted) throw asSlipwayError(deadline.signal.reason);
        }
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** One try: room on disk, a fresh staging dir, stream, verify, commit. Leaves nothing on failure. */
  private async attempt(url: URL, source: SlugSource, sha: string | undefined, signal: AbortSignal): Promise<{ entry: SlugEntry; cached: boolean; compressedBytes: number }> {
    await this.ensureRoom(0);
    const staging = this.files.stagingPath(sha);
    await fsp.mkdir(staging, { mode: 0o755 });
    // The extractor writes as the dyno user, from inside this dir (the store dir stays 0700).
    await fsp.chown(staging, this.owner.uid, this.owner.gid);
    try {
      const stream = await source.open(url, signal);
      // The room check below is async: an error the stream hits meanwhile must not be an
      // unhandled 'error' event; extractSlug finds it in stream.errored.
      stream.on('error', () => undefined);
      signal.addEventListener('abort', () => stream.destroy(signal.reason as Error), { once: true });
      if (signal.aborted) stream.destroy(signal.reason as Error);
      const declared = declaredLength(stream);
      if (declared !== undefined) {
        if (declared > this.limits.maxCompressedBytes) {
          stream.destroy();
          throw new SlipwayError('SLUG_TOO_LARGE', `slug breaks a budget: ${declared} compressed bytes exceed ${this.limits.maxCompressedBytes}`);
        }
        await this.ensureRoom(declared * EXPANSION_ESTIMATE).catch((err: unknown) => {
          stream.destroy();
          throw err;
        });
      }
      const result = await extractSlug({ source: stream, stagingDir: staging, owner: this.owner, expectedSha256: sha, log: this.log, limits: this.limits });
      if (sha === undefined && (await this.files.readEntry(result.sha256))) {
        // Fetched by URL and it was already here under its digest: keep the cached copy.
        await this.files.discard(staging);
        return { entry: (await this.files.readEntry(result.sha256)) as SlugEntry, cached: true, compressedBytes: result.compressedBytes };
      }
      return { entry: await this.commit(staging, result.sha256, result), cached: false, compressedBytes: result.compressedBytes };
    } catch (err) {
      await this.files.discard(staging).catch((rmErr: unknown) => {
        this.log.error({ path: staging, err: rmErr }, 'could not remove a failed slug staging dir');
      });
      throw err;
    }
  }

  /** Evicts what it must so `needBytes` fit above the floor and under the budget. */
  private async ensureRoom(needBytes: number): Promise<void> {
    const { fits } = await this.gc(needBytes);
    if (!fits) {
      const free = await this.files.freeBytes();
      throw new SlipwayError('SLUG_DISK_FULL', `slug cache needs ${needBytes} bytes but has ${free} free with a floor of ${this.cacheLimits.floorBytes} (budget ${this.cacheLimits.budgetBytes}) after evicting every unused slug`);
    }
  }

  /** Staging dir -> <sha256>/ (atomic), then the metadata, written to a temp file and fsynced. */
  private async commit(staging: string, sha: string, result: ExtractResult): Promise<SlugEntry> {
    await fsp.rename(staging, this.files.entryPath(sha));
    // Read-only from here on: nothing writes a committed slug (overlayfs never writes its
    // lower layers; dynos write to their upper dir). Only eviction removes it, as root.
    // The slug's root dir goes back to root: the dyno user owns the files, not the entry.
    await fsp.chown(this.files.entryPath(sha), 0, 0);
    await fsp.chmod(this.files.entryPath(sha), 0o555);
    const meta: SlugMeta = {
      sha256: sha, bytes: result.bytes, files: result.files, compressedBytes: result.compressedBytes,
      fetchedAt: new Date().toISOString(), bootId: this.bootId, durable: false,
    };
    await this.files.writeMeta(meta);
    this.lastUsed.set(sha, Date.now());
    this.settle(sha);
    return { sha256: sha, path: this.files.entryPath(sha), bytes: result.bytes, files: result.files };
  }

  /** In the background: flush the file system, then mark the entry durable. The entry is
   * spared by gc meanwhile; a failed flush leaves it non-durable (retried on the next start). */
  private settle(sha: string): void {
    if (this.settling.has(sha)) return;
    const work = (async () => {
      await this.flush(this.dir);
      const meta = await this.files.readMeta(sha);
      if (!meta || meta.durable === true || !existsSync(this.files.entryPath(sha))) return;
      const lastUsed = this.lastUsed.get(sha);
      await this.files.writeMeta({ ...meta, durable: true });
      // The metadata file's mtime is the slug's last use (LRU across restarts): keep it.
      if (lastUsed !== undefined) await fsp.utimes(this.files.metaPath(sha), new Date(lastUsed), new Date(lastUsed)).catch(() => undefined);
    })()
      .catch((err: unknown) => this.log.warn({ sha256: sha, err }, 'could not flush a committed slug; it stays non-durable until the next start'))
      .finally(() => this.settling.delete(sha));
    this.settling.set(sha, work);
  }
}

/** The compressed size the source announced (HTTP Content-Length), if any. */
function declaredLength(stream: unknown): number | undefined {
  const headers = (stream as { headers?: Record<string, unknown> }).headers;
  const raw = headers?.['content-length'] ?? (stream as { slugBytes?: unknown }).slugBytes;
  const n = typeof raw === 'string' ? Number(raw) : typeof raw === 'number' ? raw : NaN;
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}
