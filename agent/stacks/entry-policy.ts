// Which entries of a stack archive may be extracted. A stack is an operator-supplied OS image,
// not hostile input like a slug: owners, modes (setuid included: dynos run with
// no_new_privileges) and absolute symlink targets are an image's normal content and are kept.
// What is refused is anything that would make GNU tar, running as root, write outside the
// staging dir or through a link: `..` segments, absolute paths, a later entry under or over an
// earlier symlink, hard links to anything but an earlier regular file of the same archive.
// A symlink's target is never followed while extracting, so where it points is the image's
// business (the runtime resolves it inside the container's root).
//
// One StackEntryJudge sees the entries of one archive in order; it holds the kind of every
// path seen so far.
import { throughSymlink } from '../slugs/extract.js';

/** What the judge needs of an entry (node-tar's ReadEntry has these fields). */
export interface StackEntryFacts {
  path: string;
  type: string;
  linkpath?: string | undefined;
  size?: number | undefined;
}

type Kind = 'file' | 'directory' | 'symlink';

export type StackEntryVerdict =
  | { action: 'extract'; kind: Kind | 'hardlink'; relPath: string }
  /** The archive's own root (`./`): GNU tar applies it to the staging dir, which is fine. */
  | { action: 'skip' }
  | { action: 'reject'; reason: string };

const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);

/** The path relative to the rootfs (`./etc//x` -> `etc/x`; `''` is the root), or why not.
 * Backslashes are ordinary characters here: systemd unit names use them (`\x2d`). */
export function normalizeStackPath(raw: string): { ok: true; relPath: string } | { ok: false; reason: string } {
  if (raw.includes('\0')) return { ok: false, reason: 'contains a NUL byte' };
  if (raw.startsWith('/')) return { ok: false, reason: 'is absolute' };
  const segments = raw.split('/');
  if (segments.includes('..')) return { ok: false, reason: "contains a '..' segment" };
  return { ok: true, relPath: segments.filter((s) => s !== '' && s !== '.').join('/') };
}

export class StackEntryJudge {
  private readonly kinds = new Map<string, Kind>();
  private readonly symlinks = new Set<string>();

  check(e: StackEntryFacts): StackEntryVerdict {
    const shown = JSON.stringify(e.path);
    const norm = normalizeStackPath(e.path);
    if (!norm.ok) return { action: 'reject', reason: `entry ${shown} ${norm.reason}` };
    const { relPath } = norm;

    let kind: Kind | 'hardlink';
    if (FILE_TYPES.has(e.type)) kind = 'file';
    else if (e.type === 'Directory') kind = 'directory';
    else if (e.type === 'SymbolicLink') kind = 'symlink';
    else if (e.type === 'Link') kind = 'hardlink';
    // Devices and FIFOs are removed before the judge (tar-filter.ts); one here is a bug there.
    else return { action: 'reject', reason: `entry ${shown} has unsupported type ${e.type}` };

    if (relPath === '') {
      return kind === 'directory' ? { action: 'skip' } : { action: 'reject', reason: `entry ${shown} would replace the rootfs root` };
    }
    const through = throughSymlink(relPath, this.symlinks);
    if (through !== undefined) {
      return { action: 'reject', reason: `entry ${shown} would be written through or over the symlink ${JSON.stringify(through)}` };
    }
    const before = this.kinds.get(relPath);
    const becomes: Kind = kind === 'hardlink' ? 'file' : kind;
    if (before !== undefined && !(before === becomes && kind !== 'hardlink')) {
      return { action: 'reject', reason: `entry ${shown} appears twice (a ${before}, then a ${kind})` };
    }

    if (kind === 'symlink') {
      if (!e.linkpath) return { action: 'reject', reason: `symlink ${shown} has no target` };
      this.symlinks.add(relPath);
    } else if (kind === 'hardlink') {
      const target = normalizeStackPath(e.linkpath ?? '');
      if (!target.ok || target.relPath === '') {
        return { action: 'reject', reason: `hard link ${shown} -> ${JSON.stringify(e.linkpath ?? '')} ${target.ok ? 'targets the root' : target.reason}` };
      }
      const via = throughSymlink(target.relPath, this.symlinks);
      if (via !== undefined || this.kinds.get(target.relPath) !== 'file') {
        return { action: 'reject', reason: `hard link ${shown} -> ${JSON.stringify(e.linkpath)} does not name an earlier regular file of the archive` };
      }
    }
    this.kinds.set(relPath, becomes);
    return { action: 'extract', kind, relPath };
  }
}
