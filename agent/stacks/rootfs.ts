// Paths inside a stack's root filesystem, resolved the way a dyno sees them: an absolute
// symlink target means the rootfs's own root, never the host's. A plain existsSync() on the
// host would follow `bin/sh -> /bin/sh` to the host's shell and call a stack usable that has
// no shell at all (in the dyno that link points at itself).
import { lstatSync, readlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';

/** Linux's own limit on symlinks followed in one lookup (MAXSYMLINKS). */
const MAX_SYMLINKS = 40;

export type RootfsLookup = { ok: true; hostPath: string; stats: Stats } | { ok: false; reason: string };

/**
 * Follows `relPath` inside `root`, symlinks included. A `..` that would climb above the root
 * is refused: the kernel would stop at the container's root, but on the host the same link
 * leads out of the stack, so such a link is not trusted for anything the host checks.
 */
export function lookupInRootfs(root: string, relPath: string): RootfsLookup {
  let pending = relPath.split('/').filter((s) => s !== '' && s !== '.');
  const resolved: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const [part, ...rest] = pending as [string, ...string[]];
    pending = rest;
    if (part === '..') {
      if (resolved.length === 0) return { ok: false, reason: `/${relPath} leads outside the root filesystem` };
      resolved.pop();
      continue;
    }
    const hostPath = join(root, ...resolved, part);
    let st: Stats;
    try {
      st = lstatSync(hostPath);
    } catch (err) {
      return { ok: false, reason: `/${[...resolved, part].join('/')} ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : (err as Error).message}` };
    }
    if (st.isSymbolicLink()) {
      if (++links > MAX_SYMLINKS) return { ok: false, reason: `/${relPath}: too many levels of symbolic links` };
      const target = readlinkSync(hostPath);
      if (target.startsWith('/')) resolved.length = 0;
      pending = [...target.split('/').filter((s) => s !== '' && s !== '.'), ...pending];
      continue;
    }
    if (pending.length > 0 && !st.isDirectory()) return { ok: false, reason: `/${[...resolved, part].join('/')} is not a directory` };
    resolved.push(part);
  }
  const hostPath = join(root, ...resolved);
  return { ok: true, hostPath, stats: lstatSync(hostPath) };
}

/** Why `relPath` is not an executable regular file inside the rootfs, or undefined when it is. */
export function notExecutable(root: string, relPath: string): string | undefined {
  const found = lookupInRootfs(root, relPath);
  if (!found.ok) return found.reason;
  if (!found.stats.isFile()) return `/${relPath} is not a regular file`;
  if ((found.stats.mode & 0o111) === 0) return `/${relPath} is not executable`;
  return undefined;
}
