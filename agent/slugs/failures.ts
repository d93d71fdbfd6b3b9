// Mapping of low-level failures (node-tar, zlib, fs, sockets) to slipway's stable SLUG_*
// codes. Kept in one place so the store, the extractor and the sources agree.
import { SlipwayError } from '../../shared/errors.js';

interface ErrorLike {
  name?: unknown;
  code?: unknown;
  tarCode?: unknown;
  syscall?: unknown;
  message?: unknown;
}

function fields(err: unknown): ErrorLike {
  return typeof err === 'object' && err !== null ? (err) : {};
}

function messageOf(err: unknown): string {
  const m = fields(err).message;
  return typeof m === 'string' ? m : String(err);
}

/** Any failure while reading from a slug source: retryable unless it already has a code. */
export function sourceFailure(err: unknown): SlipwayError {
  if (err instanceof SlipwayError) return err;
  const code = fields(err).code;
  const detail = typeof code === 'string' ? `${code}: ${messageOf(err)}` : messageOf(err);
  return new SlipwayError('SLUG_FETCH_FAILED', `slug download failed: ${detail}`, { cause: err });
}

/**
 * An error emitted by node-tar's Unpack (strict mode turns its warnings into errors) or
 * thrown while finishing the extraction.
 */
export function classifyTarError(err: unknown): SlipwayError {
  if (err instanceof SlipwayError) return err;
  const e = fields(err);
  const message = messageOf(err);
  if (e.name === 'SymlinkError') {
    return new SlipwayError('SLUG_UNSAFE_ENTRY', `unsafe slug: an entry would be written through a symlink (${message})`, { cause: err });
  }
  if (e.name === 'CwdError') {
    return new SlipwayError('INTERNAL', `slug staging dir vanished: ${message}`, { cause: err });
  }
  if (/max decompression ratio|excessively deep/.test(message)) {
    return new SlipwayError('SLUG_TOO_LARGE', `slug exceeds a budget: ${message}`, { cause: err });
  }
  if (e.code === 'ENOSPC' || e.code === 'EDQUOT') {
    return new SlipwayError('SLUG_DISK_FULL', `the slug cache's file system is full: ${message}`, { cause: err });
  }
  if (e.tarCode === undefined && typeof e.syscall === 'string') {
    return new SlipwayError('INTERNAL', `writing the slug failed: ${String(e.code)}: ${message}`, { cause: err });
  }
  switch (e.tarCode) {
    case 'TAR_ENTRY_UNSUPPORTED':
      return new SlipwayError('SLUG_UNSAFE_ENTRY', `unsafe slug: ${message}`, { cause: err });
    case 'TAR_ENTRY_INFO': // node-tar rewrote a path (absolute -> relative): ours rejects first
      return new SlipwayError('SLUG_UNSAFE_PATH', `unsafe slug: ${message}`, { cause: err });
    case 'TAR_ENTRY_ERROR':
      // A local file system failure (ENOSPC, EACCES, ...) is the host's problem, not the slug's.
      if (typeof e.syscall === 'string') {
        return new SlipwayError('INTERNAL', `writing the slug failed: ${String(e.code)}: ${message}`, { cause: err });
      }
      return new SlipwayError('SLUG_UNSAFE_PATH', `unsafe slug: ${message}`, { cause: err });
    default:
      // TAR_BAD_ARCHIVE, TAR_ABORT (zlib errors), TAR_ENTRY_INVALID, and anything else
      // node-tar or zlib says about the bytes.
      return new SlipwayError('SLUG_CORRUPT', `slug is not a readable gzipped tar: ${message}`, { cause: err });
  }
}
