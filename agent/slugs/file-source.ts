// The slug source for file:///abs/path.tgz URLs: a slug already on this host (local use,
// operators' testing). Only absolute paths on this host (no host part, or `localhost`); only
// regular files (symlinks to one are followed). The file is opened non-blocking, so a FIFO
// is refused instead of hanging the open until a writer shows up.
import { constants, createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { SlipwayError } from '../../shared/errors.js';
import { redactUrl, type Logger } from '../../shared/log.js';
import { sourceFailure } from './failures.js';
import type { SlugSource } from './http-source.js';

export interface FileSlugSourceOptions {
  log: Logger;
}

/** The absolute local path of a file:// slug URL; anything else is SLUG_UNSUPPORTED_SOURCE. */
export function slugFilePath(url: URL): string {
  const bad = (why: string): SlipwayError =>
    new SlipwayError('SLUG_UNSUPPORTED_SOURCE', `invalid file slug URL ${redactUrl(url.href)}: ${why}; expected file:///absolute/path.tgz`);
  if (url.protocol !== 'file:') throw bad('the scheme is not file');
  // The URL parser already turns file://localhost/ into file:///.
  if (url.hostname !== '' && url.hostname !== 'localhost') throw bad(`host ${url.hostname} is not this host`);
  if (url.search !== '' || url.hash !== '') throw bad('a query or fragment is not supported');
  let p: string;
  try {
    p = fileURLToPath(url);
  } catch (err) {
    throw bad(err instanceof Error ? err.message : String(err));
  }
  if (!path.isAbsolute(p)) throw bad('the path is not absolute');
  if (p.includes('\0')) throw bad('the path contains a NUL byte');
  return p;
}

function abortReason(signal: AbortSignal): SlipwayError {
  const r: unknown = signal.reason;
  return r instanceof SlipwayError ? r : sourceFailure(r ?? new Error('slug read aborted'));
}

function openFailure(err: unknown, p: string): SlipwayError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const message = err instanceof Error ? err.message : String(err);
  const detail = code === undefined || message.startsWith(code) ? message : `${code}: ${message}`;
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR': // a path component is a file
      return new SlipwayError('SLUG_NOT_FOUND', `slug file ${p} does not exist (${detail})`, { cause: err });
    case 'EACCES':
    case 'EPERM':
      return new SlipwayError('SLUG_FORBIDDEN', `slug file ${p} is not readable by the agent (${detail})`, { cause: err });
    case 'EISDIR':
    case 'ELOOP':
    case 'ENXIO': // a socket, or a FIFO without a writer
    case 'ENAMETOOLONG':
      return new SlipwayError('SLUG_UNSUPPORTED_SOURCE', `slug path ${p} is not a readable regular file (${detail})`, { cause: err });
    default:
      return new SlipwayError('SLUG_FETCH_FAILED', `reading slug file ${p} failed (${detail})`, { cause: err });
  }
}

export class FileSlugSource implements SlugSource {
  readonly schemes = ['file:'] as const;
  private readonly log: Logger;

  constructor(opts: FileSlugSourceOptions) {
    this.log = opts.log;
  }

  async open(url: URL, signal: AbortSignal): Promise<Readable> {
    const p = slugFilePath(url);
    if (signal.aborted) throw abortReason(signal);
    let handle: fsp.FileHandle;
    try {
      handle = await fsp.open(p, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (err) {
      throw openFailure(err, p);
    }
    let size: number;
    try {
      const st = await handle.stat();
      if (!st.isFile()) {
        const kind = st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : 'a device';
        throw new SlipwayError('SLUG_UNSUPPORTED_SOURCE', `slug path ${p} is ${kind}, not a regular file`);
      }
      size = st.size;
      if (signal.aborted) throw abortReason(signal);
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err instanceof SlipwayError ? err : openFailure(err, p);
    }

    // The read stream's own errors are fs errors: relay the bytes through a PassThrough that
    // fails with a SlipwayError instead.
    const file = createReadStream(p, { fd: handle, autoClose: true });
    const out = new PassThrough();
    const onAbort = (): void => {
      out.destroy(abortReason(signal));
    };
    file.on('error', (err) => out.destroy(openFailure(err, p)));
    out.on('close', () => {
      signal.removeEventListener('abort', onAbort);
      if (!file.destroyed) file.destroy();
    });
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();
    file.pipe(out);
    this.log.debug({ path: p, bytes: size }, 'reading slug from a local file');
    return out;
  }
}
