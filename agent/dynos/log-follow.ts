// Follows a dyno's log file as its monitor appends to it: the one-off `dyno run` streams a
// dyno's output this way. Polling, not inotify: the file may not exist yet when following
// starts, and json-file logs are rotated by renaming.
import type { LogSource } from '../runtime/driver.js';
import type { LogRecord } from './log-tail.js';
import { LogReader } from './log-reader.js';

/** How often new bytes are looked for: output reaches the terminal within this. */
export const FOLLOW_POLL_MS = 50;

export class LogFollower {
  private readonly reader: LogReader;
  private timer: NodeJS.Timeout | undefined;
  private reading: Promise<void> = Promise.resolve();

  constructor(source: LogSource, private readonly onRecord: (r: LogRecord) => void) {
    this.reader = new LogReader(source);
  }

  start(): void {
    this.timer = setInterval(() => { this.reading = this.reading.then(() => this.reader.read(this.onRecord)); }, FOLLOW_POLL_MS);
  }

  /** Stops polling after one last read, so nothing the monitor wrote before is lost. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.reading;
    await this.reader.read(this.onRecord);
    this.reader.finish(this.onRecord);
  }
}
