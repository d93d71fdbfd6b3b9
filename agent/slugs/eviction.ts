// Which slugs to evict so that the cache stays under its disk budget and the file system
// keeps its free-space floor, with room for a slug about to be written. Pure: the store
// gathers the facts (sizes, last use, what running dynos mount, free bytes) and performs
// the plan (test/unit/agent/slugs/eviction.test.ts).
//
// Least recently used first; a slug in use by a dyno (pinned in memory or mounted in an
// overlay) is never evicted, even if that leaves the cache over budget.

export interface CachedSlug {
  sha256: string;
  bytes: number;
  lastUsedMs: number;
  inUse: boolean;
}

export interface CacheLimits {
  /** Most bytes the cache may hold. */
  budgetBytes: number;
  /** Free bytes the file system must keep after the cache's writes. */
  floorBytes: number;
}

export interface EvictionPlan {
  evict: string[];
  /** Whether `needBytes` fits once the plan is carried out. */
  fits: boolean;
}

export function planEviction(slugs: readonly CachedSlug[], limits: CacheLimits, freeBytes: number, needBytes = 0): EvictionPlan {
  let total = slugs.reduce((sum, s) => sum + s.bytes, 0);
  let free = freeBytes;
  const fitsNow = () => total + needBytes <= limits.budgetBytes && free - needBytes >= limits.floorBytes;
  const evict: string[] = [];
  const candidates = slugs.filter((s) => !s.inUse).sort((a, b) => a.lastUsedMs - b.lastUsedMs || a.sha256.localeCompare(b.sha256));
  for (const s of candidates) {
    if (fitsNow()) break;
    evict.push(s.sha256);
    total -= s.bytes;
    free += s.bytes;
  }
  return { evict, fits: fitsNow() };
}
