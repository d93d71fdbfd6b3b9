// The tar entry policy of the slug store: which entries of a slug may be extracted, and with
// which mode. Pure functions, no I/O, so every rule has a unit test
// (test/unit/agent/slugs/entry-policy.test.ts).
//
// A slug is hostile input (DESIGN.md, "Security rules"). node-tar has its own defences
// (it strips absolute paths, skips `..` entries, skips devices); we do not rely on them being
// *skips*: any entry this policy refuses rejects the whole slug with a stable code.
import path from 'node:path';
import type { ErrorCode } from '../../shared/errors.js';

/** The top directory of every slug (Heroku's format): the dyno sees it at /app. */
export const SLUG_ROOT = 'app';

/** Entry types that are regular files. OldFile ('\0') and ContiguousFile ('7') are old or
 * vendor spellings of a regular file that GNU tar also extracts as one. */
const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);

/** What the policy needs to know about an entry (node-tar's ReadEntry has these fields). */
export interface EntryFacts {
  path: string;
  type: string;
  linkpath?: string | undefined;
  mode?: number | undefined;
  size?: number | undefined;
}

export type EntryVerdict =
  | { action: 'extract'; kind: 'file' | 'directory' | 'symlink'; relPath: string; mode: number | undefined }
  /** The archive's own root (`.` or `./`): harmless, but never applied to the staging dir. */
  | { action: 'skip' }
  | { action: 'reject'; code: Extract<ErrorCode, 'SLUG_UNSAFE_PATH' | 'SLUG_UNSAFE_ENTRY'>; reason: string };

/**
 * Modes: the archive's permission bits are kept except setuid, setgid, sticky and
 * group/other write (mask 0o755), so nothing in a slug can gain privileges or be writable by
 * another user; directories always keep owner rwx (node-tar adds it too, so extraction can
 * descend). The process umask still applies on top (0o022 under systemd: no change).
 */
export const FILE_MODE_MASK = 0o755;
export const DEFAULT_FILE_MODE = 0o644;
export const DEFAULT_DIR_MODE = 0o755;

export function safeMode(mode: number | undefined, kind: 'file' | 'directory' | 'symlink'): number | undefined {
  if (typeof mode !== 'number') return undefined;
  const masked = mode & FILE_MODE_MASK;
  return kind === 'directory' ? masked | 0o700 : masked;
}

function reject(code: 'SLUG_UNSAFE_PATH' | 'SLUG_UNSAFE_ENTRY', reason: string): EntryVerdict {
  return { action: 'reject', code, reason };
}

/**
 * The entry's path relative to the slug, with `.` and empty segments removed
 * (`./app//x` -> `app/x`), or a reason why it is unsafe. `''` is the archive root.
 */
export function normalizeEntryPath(raw: string): { ok: true; relPath: string } | { ok: false; reason: string } {
  if (raw.includes('\\')) return { ok: false, reason: 'path contains a backslash' };
  if (raw.includes('\0')) return { ok: false, reason: 'path contains a NUL byte' };
  if (raw.startsWith('/')) return { ok: false, reason: 'path is absolute' };
  const segments = raw.split('/');
  if (segments.includes('..')) return { ok: false, reason: "path contains a '..' segment" };
  const kept = segments.filter((s) => s !== '' && s !== '.');
  if (kept.length > 0 && kept[0] !== SLUG_ROOT) return { ok: false, reason: `path is not under ${SLUG_ROOT}/` };
  return { ok: true, relPath: kept.join('/') };
}

/**
 * Whether a symlink at `relPath` (normalized, under app/) pointing at `target` stays inside
 * app/. The slug root for links is app/, not the staging dir: in the dyno, app/ is /app and
 * anything above it is the stack, which a slug has no business pointing into.
 */
export function symlinkStaysInside(relPath: string, target: string): boolean {
  if (target === '' || target.startsWith('/') || target.includes('\\') || target.includes('\0')) return false;
  const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(relPath), target));
  return resolved === SLUG_ROOT || resolved.startsWith(`${SLUG_ROOT}/`);
}

/** The verdict for one tar entry. */
export function checkEntry(entry: EntryFacts): EntryVerdict {
  const norm = normalizeEntryPath(entry.path);
  if (!norm.ok) return reject('SLUG_UNSAFE_PATH', `${norm.reason}: ${JSON.stringify(entry.path)}`);
  const { relPath } = norm;
  const shown = JSON.stringify(entry.path);

  let kind: 'file' | 'directory' | 'symlink';
  if (FILE_TYPES.has(entry.type)) kind = 'file';
  else if (entry.type === 'Directory') kind = 'directory';
  else if (entry.type === 'SymbolicLink') kind = 'symlink';
  else if (entry.type === 'Link') return reject('SLUG_UNSAFE_ENTRY', `hard link ${shown} is not allowed`);
  else return reject('SLUG_UNSAFE_ENTRY', `entry ${shown} has forbidden type ${entry.type}`);

  if (relPath === '') {
    return kind === 'directory' ? { action: 'skip' } : reject('SLUG_UNSAFE_PATH', `entry ${shown} replaces the slug root`);
  }
  // app/ itself must be a real directory: a file or link there would make /app something else.
  if (relPath === SLUG_ROOT && kind !== 'directory') {
    return reject('SLUG_UNSAFE_ENTRY', `${SLUG_ROOT} must be a directory, not a ${entry.type}`);
  }
  if (kind === 'symlink' && !symlinkStaysInside(relPath, entry.linkpath ?? '')) {
    return reject('SLUG_UNSAFE_ENTRY', `symlink ${shown} points outside ${SLUG_ROOT}/: ${JSON.stringify(entry.linkpath ?? '')}`);
  }
  return { action: 'extract', kind, relPath, mode: safeMode(entry.mode, kind) };
}
