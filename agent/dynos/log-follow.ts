// Follows a dyno's log file as its monitor appends to it: the one-off `dyno run` streams a
// dyno's output this way. Polling, not inotify: the file may not exist yet when following
// starts, and json-file logs are rotated by renaming.
import { open } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import type { LogSource } from '../runtime/driver.js';
import { parseLogRecord, type LogRecord } from './log-tail.js';

/** How often new bytes are looked for: output reaches the terminal within this. */
export const FOLLOW_POLL_MS = 50;
const READ_CHUNK = 256 * 1024;

export class LogFollower {
  private offset = 0;
  private carry = '';
  /** Keeps a UTF-8 character split across two reads whole. */
  private decoder = new StringDecoder('utf8');
  private timer: NodeJS.Timeout | undefined;
  private reading: Promise<void> = Promise.resolve();

  constructor(private readonly source: LogSource, private readonly onRecord: (r: LogRecord) => void) {}

  start(): void {
    this.timer = setInterval(() => { this.reading = this.reading.then(() => this.readNew()); }, FOLLOW_POLL_MS);
  }

  /** Stops polling after one last read, so nothing the monitor wrote before is lost. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.reading;
    await this.readNew();
    if (this.carry) this.emit(this.carry);
    this.carry = '';
  }

  private async readNew(): Promise<void> {
    let fh;
    try {
      fh = await open(this.source.path, 'r');
    } catch {
      return;
    }
    try {
      const { size } = await fh.stat();
      if (size < this.offset) {
        // Rotated or truncated: start over on the new file.
        this.offset = 0;
        this.decoder = new StringDecoder('utf8');
      }
      while (this.offset < size) {
        const buf = Buffer.alloc(Math.min(READ_CHUNK, size - this.offset));
        const { bytesRead } = await fh.read(buf, 0, buf.length, this.offset);
        if (bytesRead === 0) break;
        this.offset += bytesRead;
        const text = this.carry + this.decoder.write(buf.subarray(0, bytesRead));
        const lines = text.split('\n');
        this.carry = lines.pop() ?? '';
        for (const l of lines) this.emit(l);
      }
    } finally {
      await fh.close();
    }
  }

  private emit(line: string): void {
    const r = parseLogRecord(line, this.source.format);
    if (r) this.onRecord(r);
  }
}
