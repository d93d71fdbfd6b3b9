// `GET /apps/:app/logs?tail=1`: one follower of an app's log lines, as the agents ship them,
// written to an HTTP response that may read slower than the app writes (Heroku's `logs
// --tail`). The coordinator never waits for a reader and never holds more than
// TAIL_BUFFER_BYTES for one: while the socket pushes back, lines queue; past the bound the
// oldest are dropped and counted, and once the reader catches up it is told, in the stream
// itself, as Logplex tells a tail session:
//   `TIMESTAMP slipway[logplex]: Error L11 (Tail buffer overflow): N messages dropped since T.`
// A session ends after TAIL_SESSION_MS (the CLI dials again): nothing on the API lasts forever.
//
// Lines are filtered by dyno (`web.1`, or a process type `web` for all of its dynos) and by
// source (`app`: what the dyno wrote; `slipway`: what the agent said about it), read from the
// line's own `TIMESTAMP source[dyno]: text` form (shared/protocol.ts LogBatch).

/** What one slow reader may cost the coordinator: lines waiting for its socket. */
export const TAIL_BUFFER_BYTES = 1024 * 1024;
/** A tail session's longest life; the developer CLI dials again when it ends. */
export const TAIL_SESSION_MS = 60 * 60_000;

export type LogSourceName = 'app' | 'slipway';

export interface LogLineFilter {
  /** A dyno name (`web.1`) or a process type (`web`). */
  dyno?: string;
  source?: LogSourceName;
}

const LINE = /^\S+ ([a-z]+)\[([^\]]+)\]: /;

/** Whether a shipped line passes the filter; a line not of the shipped form passes only an
 * empty filter. */
export function lineMatches(line: string, filter: LogLineFilter): boolean {
  if (filter.dyno === undefined && filter.source === undefined) return true;
  const m = LINE.exec(line);
  if (!m) return false;
  if (filter.source !== undefined && m[1] !== filter.source) return false;
  if (filter.dyno !== undefined) {
    const dyno = m[2]!;
    if (filter.dyno.includes('.') ? dyno !== filter.dyno : dyno.slice(0, dyno.lastIndexOf('.')) !== filter.dyno) return false;
  }
  return true;
}

/** The part of an HTTP response a tail writes to. */
export interface TailSink {
  write(chunk: string): boolean;
  once(event: 'drain', listener: () => void): unknown;
}

export class LogTail {
  private readonly queue: string[] = [];
  private queuedBytes = 0;
  private blocked = false;
  private dropped = 0;
  private droppedSince: string | undefined;
  private droppedAll = 0;

  constructor(
    private readonly sink: TailSink,
    private readonly bufferBytes = TAIL_BUFFER_BYTES,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Lines dropped so far that the reader has not been told of yet. */
  get pendingDrops(): number {
    return this.dropped;
  }

  /** Every line this session dropped. */
  get droppedTotal(): number {
    return this.droppedAll;
  }

  /** Bytes waiting for the socket. */
  get bufferedBytes(): number {
    return this.queuedBytes;
  }

  push(line: string): void {
    if (!this.blocked && this.queue.length === 0) {
      this.write(line);
      return;
    }
    this.queue.push(line);
    this.queuedBytes += line.length + 1;
    while (this.queuedBytes > this.bufferBytes && this.queue.length > 0) {
      const oldest = this.queue.shift()!;
      this.queuedBytes -= oldest.length + 1;
      this.droppedSince ??= this.now().toISOString();
      this.dropped++;
      this.droppedAll++;
    }
  }

  private write(line: string): void {
    if (this.sink.write(`${line}\n`)) return;
    this.blocked = true;
    this.sink.once('drain', () => this.flush());
  }

  private flush(): void {
    this.blocked = false;
    if (this.dropped > 0) {
      const notice = `${this.now().toISOString()} slipway[logplex]: Error L11 (Tail buffer overflow): ${this.dropped} messages dropped since ${this.droppedSince}.`;
      this.dropped = 0;
      this.droppedSince = undefined;
      this.write(notice);
      if (this.blocked) return;
    }
    while (this.queue.length > 0 && !this.blocked) {
      const line = this.queue.shift()!;
      this.queuedBytes -= line.length + 1;
      this.write(line);
    }
  }
}
