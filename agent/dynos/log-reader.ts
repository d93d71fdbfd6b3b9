// Reads what a dyno's monitor appended to its log since the last read, one record per
// complete line: the core of both the one-off CLI's follower (log-follow.ts) and the agent's
// log shipper (log-shipper.ts), which differ only in when they read. A file that shrank was
// rotated or replaced (a restarted container): reading starts over on it.
import { statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import type { LogSource } from '../runtime/driver.js';
import { parseLogRecord, type LogRecord } from './log-tail.js';

const READ_CHUNK = 256 * 1024;

export class LogReader {
  private offset = 0;
  private carry = '';
  /** Keeps a UTF-8 character split across two reads whole. */
  private decoder = new StringDecoder('utf8');
  private reading = false;

  constructor(readonly source: LogSource) {}

  /** Skips what the file holds now (a re-adopted dyno: its past output is not read again). */
  skipToEnd(): Promise<void> {
    this.offset = statSync(this.source.path, { throwIfNoEntry: false })?.size ?? 0;
    return Promise.resolve();
  }

  /** Whether the file changed size since the last read: one synchronous stat, no promise or
   * thread-pool round trip, so polling many quiet logs costs next to nothing. */
  changed(): boolean {
    if (this.reading) return false;
    const size = statSync(this.source.path, { throwIfNoEntry: false })?.size;
    return size !== undefined && size !== this.offset;
  }

  /** Reads the new bytes and hands each complete record to `onRecord`. */
  async read(onRecord: (r: LogRecord) => void): Promise<void> {
    if (this.reading) return;
    this.reading = true;
    try {
      const fh = await open(this.source.path, 'r').catch(() => undefined);
      if (!fh) return;
      try {
        const { size } = await fh.stat();
        if (size < this.offset) this.restart();
        while (this.offset < size) {
          const buf = Buffer.alloc(Math.min(READ_CHUNK, size - this.offset));
          const { bytesRead } = await fh.read(buf, 0, buf.length, this.offset);
          if (bytesRead === 0) break;
          this.offset += bytesRead;
          const lines = (this.carry + this.decoder.write(buf.subarray(0, bytesRead))).split('\n');
          this.carry = lines.pop() ?? '';
          for (const l of lines) this.emit(l, onRecord);
        }
      } finally {
        await fh.close();
      }
    } finally {
      this.reading = false;
    }
  }

  /** A last line the monitor never ended with a newline. */
  finish(onRecord: (r: LogRecord) => void): void {
    if (this.carry) this.emit(this.carry, onRecord);
    this.carry = '';
  }

  private restart(): void {
    this.offset = 0;
    this.carry = '';
    this.decoder = new StringDecoder('utf8');
  }

  private emit(line: string, onRecord: (r: LogRecord) => void): void {
    const r = parseLogRecord(line, this.source.format);
    if (r) onRecord(r);
  }
}
