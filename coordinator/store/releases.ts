// Releases as the store records them: the distinct (slug, env, stack, release name) a formation
// of an app has run, numbered per app in the order they first appeared. Both stores derive
// them from formation writes the same way, so the history cannot disagree with the formations.
import type { StoredFormation, StoredRelease } from './store.js';

/** The release a formation runs, numbered `version`. */
export function releaseOf(f: StoredFormation, version: number): StoredRelease {
  const slug: StoredRelease['slug'] = { url: f.slug.url, sha256: f.slug.sha256 };
  if (f.slug.signature !== undefined) slug.signature = f.slug.signature;
  const release: StoredRelease = { app: f.app, version, slug, env: { ...f.env }, stack: f.stack, createdAt: new Date().toISOString() };
  if (f.release !== undefined) release.release = f.release;
  return release;
}

/** Whether two releases are the same one (their numbers and times aside). */
export function sameRelease(a: StoredRelease, b: StoredRelease): boolean {
  return a.slug.url === b.slug.url && a.slug.sha256 === b.slug.sha256 && a.slug.signature === b.slug.signature
    && a.stack === b.stack && a.release === b.release && sameEnv(a.env, b.env);
}

function sameEnv(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}
