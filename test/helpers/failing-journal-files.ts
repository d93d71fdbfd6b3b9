// The event journal's file operations (agent/link/event-journal.ts JournalFiles) on the real
// disk, with failures injected on purpose: set `failAppend` / `failReplace` to an errno code
// (ENOSPC, EIO, EROFS) and every such call throws it like the kernel would, until cleared.
// `tornAppend` makes a failing append write half its text first (a disk that filled up mid
// line). Reads never fail: a test reopens the file as the next agent process would.
import { diskJournalFiles, type JournalFiles } from '../../agent/link/event-journal.js';

export function errnoError(code: string, syscall: string, path: string): NodeJS.ErrnoException {
  const err = new Error(`${code}: injected failure, ${syscall} '${path}'`) as NodeJS.ErrnoException;
  err.code = code;
  err.syscall = syscall;
  err.path = path;
  return err;
}

export class FailingJournalFiles implements JournalFiles {
  failAppend: string | undefined;
  failReplace: string | undefined;
  tornAppend = false;
  readonly calls = { append: 0, replace: 0, failed: 0 };

  constructor(private readonly disk: JournalFiles = diskJournalFiles) {}

  /** Every write fails with `code` (undefined: the disk works again). */
  failAll(code: string | undefined): void {
    this.failAppend = code;
    this.failReplace = code;
  }

  read(file: string): string {
    return this.disk.read(file);
  }

  append(file: string, text: string): void {
    this.calls.append++;
    if (this.failAppend) {
      this.calls.failed++;
      if (this.tornAppend) this.disk.append(file, text.slice(0, Math.floor(text.length / 2)));
      throw errnoError(this.failAppend, 'write', file);
    }
    this.disk.append(file, text);
  }

  replace(file: string, text: string): void {
    this.calls.replace++;
    if (this.failReplace) {
      this.calls.failed++;
      throw errnoError(this.failReplace, 'rename', file);
    }
    this.disk.replace(file, text);
  }
}
