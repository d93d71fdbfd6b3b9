// The slug store: a content-addressed cache of extracted slugs under <dir>, laid out by
// cache-dir.ts (one dir per slug, its metadata file written last).
//
// A miss downloads once even when many dynos ask at the same moment (single flight per
// sha256), streams the bytes through SHA-256 and the extractor in one pass, and renames the
// staging dir into place only when the digest matched. A bad slug is rejected whole and
// leaves nothing behind. Transient failures are retried with backoff (retry.ts) within one
// total deadline (source-fetch.ts). The store is the only writer of <dir>.
//
// Disk: the cache stays under `budgetBytes` and keeps `floorBytes` free on its file system
// by evicting least-recently-used slugs (eviction.ts). A slug in use is never evicted: pinned
// by a dyno of this agent, or mounted in any overlay (in-use.ts), which also protects the
// slugs of running dynos from `slipway-agent slug gc` run beside the agent. The last use of a
// slug is the mtime of its metadata file, so LRU order survives agent restarts.
//
// Signed slugs (signature.ts decides which references are checked): a slug that must be
// verified is not streamed into the extractor. Its compressed bytes go to a file in the store
// dir first (hashed-copy.ts: SHA-256 and BLAKE2b-512 on the way), the signature is verified
// over them, and only then does the extractor read that file; a refused slug leaves nothing
// (the file is discarded, no staging dir was made). A cache hit is verified too, on every
// ensure(), against the keys configured now (a key dropped from slugPublicKeys stops the
// slugs only it signed): against the BLAKE2b-512 this process saw when it downloaded the slug,
// else (the slug came in unsigned, or before an agent restart) the slug's bytes are fetched
// once more to hash them, nothing written. The unsigned path stays one streaming pass.
import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { SlipwayError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import type { ExtractCgroupOptions } from './extract-cgroup.js';
import { extractSlug, type ExtractResult } from './extract.js';
import { HttpSlugSource, type SlugSource } from './http-source.js';
import { DEFAULT_SLUG_LIMITS, type SlugLimits } from './budget.js';
import { planEviction, type CacheLimits } from './eviction.js';
import { readMountedSlugs } from './in-use.js';
import { currentBootId, entrySurvives, flushFileSystem } from './durability.js';
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from './retry.js';
import { abortableSleep, SourceFetch } from './source-fetch.js';
import type { SlugMeta } from './slug-meta.js';
import { SHA256_RE, SlugCacheDir, type SlugEntry } from './cache-dir.js';
import { hashedCopy, type HashedCopy } from './hashed-copy.js';
import { SlugSigning, type SigningSettings, type SlugSignature } from './signature.js';
import type { DecisionLog } from '../diagnostics/decisions.js';

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
  /** requireSignedSlugs and slugPublicKeys; default: nothing required, no key trusted. */
  signing?: SigningSettings;
  /** GNU tar runs in `<parent>/slug-extract`, weighted below every dyno (extract-cgroup.ts);
   * absent (unit tests): in the agent's own cgroup. */
  extractCgroup?: ExtractCgroupOptions;
  /** Counts hits, misses, evictions and downloads (agent/metrics/agent-metrics.ts). */
  observer?: SlugCacheObserver;
  /** The agent's reasons (agent/diagnostics/decisions.ts): each eviction and why that slug. */
  decisions?: Pick<DecisionLog, 'record'>;
}

/** What the store reports as it works, for the agent's metrics. Must not throw. */
export interface SlugCacheObserver {
  lookup(hit: boolean): void;
  evicted(bytes: number): void;
  downloaded(compressedBytes: number, seconds: number): void;
}

/** What ensure() is asked for: a protocol SlugRef, or the CLI's URL with optional digest and
 * signature (the whole `.minisig` text). */
export interface SlugRequest {
  url: string;
  sha256?: string | undefined;
  signature?: string | undefined;
}

interface Flight {
  done: Promise<SlugEntry & { cached: boolean }>;
  /** The signature of the request that started it (the one a signed download checked). */
  signature: string | undefined;
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
  private readonly fetch: SourceFetch;
  /** One flight per sha256 being resolved (hit check or download); removed when settled. */
  private readonly inflight = new Map<string, Flight>();
  private readonly signing: SlugSigning;
  private readonly extractCgroup: ExtractCgroupOptions | undefined;
  /** BLAKE2b-512 of committed slugs' compressed bytes, as far as this process has seen them
   * (signature checks of cache hits); dropped on eviction. Not persisted: after a restart a
   * signed cache hit reads its bytes once more. */
  private readonly digests = new Map<string, Buffer>();
  /** Re-reads of cached slugs' bytes for their digest, one per sha256. */
  private readonly rehashing = new Map<string, Promise<Buffer>>();
  /** Committed entries, for stats(); filled by init() and every successful ensure(). */
  private readonly index = new Map<string, SlugEntry>();
  /** Last use per committed slug (ms); persisted as the metadata file's mtime. */
  private readonly lastUsed = new Map<string, number>();
  /** sha256 -> owners (dyno ids) that use it. */
  private readonly pins = new Map<string, Set<string>>();
  private readonly limits: SlugLimits;
  private readonly cacheLimits: CacheLimits;
  private readonly bootId: string;
  private readonly flush: (dir: string) => Promise<void>;
  /** Background flushes of newly committed entries (see durability.ts), by sha256. */
  private readonly settling = new Map<string, Promise<void>>();
  private readonly observer: SlugCacheObserver | undefined;
  private readonly decisions: Pick<DecisionLog, 'record'> | undefined;

  constructor(opts: SlugStoreOptions) {
    this.dir = path.resolve(opts.dir);
    this.owner = opts.owner;
    this.log = opts.log;
    this.files = new SlugCacheDir(this.dir, this.log);
    this.limits = opts.limits ?? DEFAULT_SLUG_LIMITS;
    this.cacheLimits = opts.cache ?? DEFAULT_CACHE_LIMITS;
    this.bootId = opts.bootId ?? currentBootId();
    this.flush = opts.flush ?? flushFileSystem;
    this.fetch = new SourceFetch({
      sources: opts.sources ?? [new HttpSlugSource({ log: this.log })],
      fetchTimeoutMs: opts.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS,
      retry: opts.retry ?? DEFAULT_RETRY_POLICY,
      limits: this.limits,
      log: this.log,
      sleep: opts.sleep ?? abortableSleep,
      ensureRoom: (bytes) => this.ensureRoom(bytes),
    });
    // Throws CONFIG_INVALID for a bad key: the agent (or CLI) does not start half-configured.
    this.signing = new SlugSigning(opts.signing ?? { required: false, publicKeys: [] });
    this.extractCgroup = opts.extractCgroup;
    this.observer = opts.observer;
    this.decisions = opts.decisions;
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
   * A signature the host checks (signature.ts) is verified before the slug is extracted, and
   * again for a cache hit; SLUG_UNSIGNED and an untrusted key are refused before any download.
   */
  async ensure(ref: SlugRequest, options: { pin?: string } = {}): Promise<SlugEntry & { cached: boolean }> {
    const sha = ref.sha256;
    if (sha !== undefined && !SHA256_RE.test(sha)) {
      throw new SlipwayError('PROTOCOL_SCHEMA_VIOLATION', 'slug sha256 must be 64 lowercase hex digits');
    }
    const demanded = this.signing.demand(ref.signature);
    const key = sha ?? `url:${ref.url}`;
    let entry: SlugEntry & { cached: boolean };
    for (;;) {
      let flight = this.inflight.get(key);
      const joined = flight !== undefined;
      if (!flight) {
        flight = { done: this.resolve(ref.url, sha, demanded).finally(() => this.inflight.delete(key)), signature: ref.signature };
        this.inflight.set(key, flight);
      }
      try {
        entry = await flight.done;
        break;
      } catch (err) {
        // The download this request joined refused the signature of the request that started
        // it; this one's own (or none) decides for itself, in a flight of its own.
        if (joined && err instanceof SlipwayError && err.code === 'SLUG_SIGNATURE_INVALID' && flight.signature !== ref.signature) continue;
        throw err;
      }
    }
    if (demanded) {
      // Held while the signature is checked (a cache hit may re-read its bytes): no gc may
      // evict the entry between the flight and the caller's pin.
      const holder = `signature-check:${randomBytes(6).toString('hex')}`;
      this.pin(entry.sha256, holder);
      try {
        this.signing.verify(demanded, await this.digestOf(entry.sha256, ref.url));
      } finally {
        this.unpin(entry.sha256, holder);
      }
    }
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
    const freeBytes = await this.files.freeBytes();
    const plan = planEviction(slugs, this.cacheLimits, freeBytes, needBytes);
    const unpinned = slugs.filter((s) => !s.inUse).length;
    let totalBytes = slugs.reduce((sum, s) => sum + s.bytes, 0);
    for (const [i, sha] of plan.evict.entries()) {
      const slug = slugs.find((s) => s.sha256 === sha);
      await this.evict(sha);
      const bytes = slug?.bytes ?? 0;
      this.observer?.evicted(bytes);
      // Why this one (eviction.ts): the least recently used of the slugs no dyno uses, taken
      // while the cache is over its budget or the disk under its floor.
      const over = totalBytes + needBytes > this.cacheLimits.budgetBytes ? `the cache holds ${totalBytes} bytes (+${needBytes} needed) over its ${this.cacheLimits.budgetBytes}-byte budget` : `the disk has ${freeBytes} bytes free, under the ${this.cacheLimits.floorBytes}-byte floor with ${needBytes} needed`;
      this.decisions?.record({
        kind: 'slug_evicted',
        message: `slug ${sha.slice(0, 12)} evicted: least recently used (${i + 1} of ${unpinned} unpinned, last used ${new Date(slug?.lastUsedMs ?? 0).toISOString()}) while ${over}`,
        data: { sha256: sha, bytes, lastUsedMs: slug?.lastUsedMs ?? 0, unpinned, cacheBytes: totalBytes, budgetBytes: this.cacheLimits.budgetBytes, freeBytes, floorBytes: this.cacheLimits.floorBytes, needBytes },
      });
      totalBytes -= bytes;
    }
    if (plan.evict.length > 0) this.log.info({ evicted: plan.evict, needBytes, fits: plan.fits }, 'evicted least recently used slugs');
    return { evicted: plan.evict, fits: plan.fits };
  }

  /** Drops a committed slug: its metadata first (it stops being an entry), then its tree. */
  private async evict(sha: string): Promise<void> {
    this.index.delete(sha);
    this.digests.delete(sha);
    this.lastUsed.delete(sha);
    await this.files.remove(sha);
  }

  /** Marks a use now; the metadata file's mtime carries it across restarts (best effort).
   * Wall time on purpose: a timestamp that outlives the process, not a duration (clock.ts). */
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

  private async resolve(url: string, sha: string | undefined, demanded: SlugSignature | undefined): Promise<SlugEntry & { cached: boolean }> {
    if (sha !== undefined) {
      const hit = await this.files.readEntry(sha);
      if (hit) {
        this.index.set(sha, hit);
        this.observer?.lookup(true);
        return { ...hit, cached: true };
      }
      // A dir without (valid) metadata is a commit that died half-way: nobody uses it.
      if (existsSync(this.files.entryPath(sha))) await this.files.discard(this.files.entryPath(sha));
    }
    this.observer?.lookup(false);
    const { entry, cached } = await this.download(url, sha, demanded);
    this.index.set(entry.sha256, entry);
    // The new slug may have taken the cache over its budget: make room again now, sparing it
    // (still in flight, so in use) and everything pinned or mounted.
    if (!cached) await this.gc().catch((err: unknown) => this.log.warn({ err }, 'slug cache gc after a download failed'));
    return { ...entry, cached };
  }

  private async download(url: string, sha: string | undefined, demanded: SlugSignature | undefined): Promise<{ entry: SlugEntry; cached: boolean }> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const started = performance.now();
    const done = await this.fetch.withRetries(url, sha, 'slug download', (parsed, source, signal) => this.attempt(parsed, source, sha, demanded, signal), (done) => ({
      msg: 'slug ready', fields: { sha256: done.entry.sha256, bytes: done.entry.bytes, files: done.entry.files, compressedBytes: done.compressedBytes },
    }));
    this.observer?.downloaded(done.compressedBytes, (performance.now() - started) / 1000);
    return done;
  }

  /** One try: room on disk, a fresh staging dir, stream, verify, commit. Leaves nothing on failure. */
  private async attempt(url: URL, source: SlugSource, sha: string | undefined, demanded: SlugSignature | undefined, signal: AbortSignal): Promise<{ entry: SlugEntry; cached: boolean; compressedBytes: number }> {
    await this.ensureRoom(0);
    if (demanded) return this.signedAttempt(url, source, sha, demanded, signal);
    const staging = await this.makeStaging(sha);
    try {
      const { stream, declared } = await this.fetch.open(url, source, signal, EXPANSION_ESTIMATE);
      return await this.extractAndCommit(staging, stream, sha, declared);
    } catch (err) {
      await this.discardStaging(staging);
      throw err;
    }
  }

  /** The signed path of one try: the compressed bytes into a file, the signature verified over
   * them, then that file extracted. A refused slug never reaches the extractor. */
  private async signedAttempt(url: URL, source: SlugSource, sha: string | undefined, demanded: SlugSignature, signal: AbortSignal): Promise<{ entry: SlugEntry; cached: boolean; compressedBytes: number }> {
    // A `.staging-*` name: removed by sweepLeftovers() if the agent dies before it is discarded.
    const file = this.files.stagingPath(sha);
    try {
      // Room for the compressed file beside what it unpacks to.
      const { stream } = await this.fetch.open(url, source, signal, EXPANSION_ESTIMATE + 1);
      const copy = await hashedCopy(stream, file, this.limits);
      this.checkDigest(copy, sha);
      this.signing.verify(demanded, copy.blake2b512);
      this.log.info({ sha256: copy.sha256, keyId: demanded.keyId, trustedComment: demanded.trustedComment }, 'slug signature verified');
      if (sha === undefined) {
        const cached = await this.files.readEntry(copy.sha256);
        if (cached) {
          this.digests.set(copy.sha256, copy.blake2b512);
          return { entry: cached, cached: true, compressedBytes: copy.bytes };
        }
      }
      const staging = await this.makeStaging(copy.sha256);
      try {
        // Known before the commit, which writes it into the metadata (slug-meta.ts).
        this.digests.set(copy.sha256, copy.blake2b512);
        return await this.extractAndCommit(staging, createReadStream(file), copy.sha256, copy.bytes);
      } catch (err) {
        await this.discardStaging(staging);
        throw err;
      }
    } finally {
      await this.files.discard(file).catch((err: unknown) => this.log.error({ path: file, err }, 'could not remove a downloaded slug file'));
    }
  }

  /** BLAKE2b-512 of a committed slug's compressed bytes: known from its download in this
   * process, else from its metadata (written when it came signed), else read once more. */
  private digestOf(sha: string, url: string): Promise<Buffer> {
    const known = this.digests.get(sha);
    if (known) return Promise.resolve(known);
    let flight = this.rehashing.get(sha);
    if (!flight) {
      // Written into the metadata when the slug was downloaded with a signature.
      flight = this.files.readMeta(sha).then((meta) => {
        if (!meta?.blake2b512) return this.rehash(sha, url);
        const digest = Buffer.from(meta.blake2b512, 'hex');
        if (this.index.has(sha)) this.digests.set(sha, digest);
        return digest;
      }).finally(() => this.rehashing.delete(sha));
      this.rehashing.set(sha, flight);
    }
    return flight;
  }

  /** A slug cached without its BLAKE2b-512 (it came unsigned): read once more from its source
   * and hashed, nothing written; single flight through digestOf. */
  private rehash(sha: string, url: string): Promise<Buffer> {
    return this.fetch.withRetries(url, sha, 'slug re-read to check its signature', async (parsed, source, signal) => {
      const { stream } = await this.fetch.open(parsed, source, signal, undefined);
      const copy = await hashedCopy(stream, undefined, this.limits);
      this.checkDigest(copy, sha);
      // Kept only while the slug is still cached (eviction drops it).
      if (this.index.has(sha)) this.digests.set(sha, copy.blake2b512);
      return copy.blake2b512;
    });
  }

  private checkDigest(copy: HashedCopy, sha: string | undefined): void {
    if (sha !== undefined && copy.sha256 !== sha) throw new SlipwayError('SLUG_CHECKSUM_MISMATCH', `slug checksum mismatch: expected sha256 ${sha}, got ${copy.sha256}`);
  }

  /** A fresh staging dir the extractor writes into as the dyno user, from inside (the store
   * dir stays 0700). */
  private async makeStaging(sha: string | undefined): Promise<string> {
    const staging = this.files.stagingPath(sha);
    await fsp.mkdir(staging, { mode: 0o755 });
    await fsp.chown(staging, this.owner.uid, this.owner.gid);
    return staging;
  }

  private async discardStaging(staging: string): Promise<void> {
    await this.files.discard(staging).catch((rmErr: unknown) => {
      this.log.error({ path: staging, err: rmErr }, 'could not remove a failed slug staging dir');
    });
  }

  /** Extracts `stream` into `staging` and commits it; a slug fetched by URL that turns out to
   * be cached already keeps the cached copy. */
  private async extractAndCommit(staging: string, stream: Readable, sha: string | undefined, declared: number | undefined): Promise<{ entry: SlugEntry; cached: boolean; compressedBytes: number }> {
    const result = await extractSlug({
      source: stream, stagingDir: staging, owner: this.owner, expectedSha256: sha, log: this.log, limits: this.limits,
      ...(declared !== undefined ? { declaredBytes: declared } : {}), ...(this.extractCgroup ? { cgroup: this.extractCgroup } : {}),
    });
    if (sha === undefined && (await this.files.readEntry(result.sha256))) {
      // Fetched by URL and it was already here under its digest: keep the cached copy.
      await this.files.discard(staging);
      return { entry: (await this.files.readEntry(result.sha256)) as SlugEntry, cached: true, compressedBytes: result.compressedBytes };
    }
    return { entry: await this.commit(staging, result.sha256, result), cached: false, compressedBytes: result.compressedBytes };
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
      ...(this.digests.has(sha) ? { blake2b512: this.digests.get(sha)!.toString('hex') } : {}),
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
