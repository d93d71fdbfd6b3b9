// Every dyno's output as Heroku log lines, for the coordinator and for the operator:
//   `TIMESTAMP app[web.1]: text`       a line the dyno wrote (stdout or stderr)
//   `TIMESTAMP slipway[web.1]: text`   the agent about the dyno ("State changed from starting to up")
// Lines longer than 10,000 bytes are split, like Heroku's. The last 1,500 lines of each dyno
// are kept for diagnostics. Lines to ship wait in one bounded queue (default 10,000 lines):
// when the link is down or slow, the oldest are dropped and counted, and the count goes out
// with the next batch. State events never travel here (they have their own sequenced outbox).
//
// One timer reads every followed log file (a stat each, a read only when it grew), instead of
// a poll per dyno: with 100 dynos that is 100 stats per tick, a few hundred microseconds.
// A dyno is followed from where its log was when it was attached: from the start for a new
// container, from the end for a re-adopted one (what it wrote while the agent was down stays
// in its log file and in `/v1/dynos/:id/logs`, but is not shipped twice or late).
import type { LogSource } from '../runtime/driver.js';
import type { LogRecord } from './log-tail.js';
import { LogReader } from './log-reader.js';

export const MAX_LINE_BYTES = 10_000;
export const KEEP_LINES = 1_500;
export const QUEUE_LINES = 10_000;
export const POLL_MS = 500;

export interface ShippedLine {
  dynoId: string;
  app: string;
  /** The rendered Heroku line. */
  line: string;
}

/** Splits `text` into pieces of at most `max` UTF-8 bytes, never inside a character. */
export function splitLine(text: string, max = MAX_LINE_BYTES): string[] {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= max) return [text];
  const out: string[] = [];
  let start = 0;
  while (start < bytes.length) {
    let end = Math.min(start + max, bytes.length);
    // Back off continuation bytes (10xxxxxx) so a character is not cut.
    while (end < bytes.length && end > start && (bytes[end]! & 0xc0) === 0x80) end--;
    out.push(bytes.subarray(start, end).toString('utf8'));
    start = end;
  }
  return out;
}

interface Followed {
  dynoId: string;
  app: string;
  name: string;
  /** The current container's log; none between a flush and the next attach. */
  reader?: LogReader;
  /** A partial record waiting for the rest of its line. */
  open?: LogRecord;
  recent: string[];
}

export class LogShipper {
  private readonly dynos = new Map<string, Followed>();
  private queue: ShippedLine[] = [];
  private droppedLines = 0;
  /** Since the agent started, for the metrics (agent/metrics/agent-collector.ts). */
  private shippedTotal = 0;
  private droppedTotal = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: { pollMs?: number; keepLines?: number; queueLines?: number } = {}) {}

  start(): void {
    this.timer ??= setInterval(() => void this.poll(), this.opts.pollMs ?? POLL_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Follows the dyno's log file (again, for a new container); `fromEnd` for a re-adopted one. */
  async attach(d: { dynoId: string; app: string; name: string }, source: LogSource, fromEnd = false): Promise<void> {
    const f = this.entry(d);
    const reader = new LogReader(source);
    if (fromEnd) await reader.skipToEnd();
    f.reader = reader;
    f.open = undefined;
  }

  /** An agent line about the dyno. */
  system(d: { dynoId: string; app: string; name: string }, text: string): void {
    const f = this.entry(d);
    this.add(f, `${new Date().toISOString()} slipway[${f.name}]: ${text}`);
  }

  /** Reads what is left of the dyno's current log (before its container and file are
   * removed); a restarted container is attached again. */
  async flush(dynoId: string): Promise<void> {
    const f = this.dynos.get(dynoId);
    const reader = f?.reader;
    if (!f || !reader) return;
    delete f.reader;
    await reader.read((r) => this.record(f, r));
    reader.finish((r) => this.record(f, r));
    if (f.open) {
      const last = f.open;
      f.open = undefined;
      this.render(f, last);
    }
  }

  /** Flushes, then forgets the dyno (it is down); its queued lines still go out. */
  async detach(dynoId: string): Promise<void> {
    await this.flush(dynoId);
    this.dynos.delete(dynoId);
  }

  /** Who follows a dyno's lines as they are kept (diagnostics' `logs -f`). */
  private readonly followers = new Map<string, Set<(line: string) => void>>();

  /** Calls `onLine` with each line of the dyno from now on, synchronously as it is kept (the
   * listener must not throw or block: diagnostics bounds what it buffers); the returned
   * function stops it. */
  subscribe(dynoId: string, onLine: (line: string) => void): () => void {
    let set = this.followers.get(dynoId);
    if (!set) this.followers.set(dynoId, (set = new Set()));
    const mine = set;
    mine.add(onLine);
    return () => {
      mine.delete(onLine);
      if (mine.size === 0 && this.followers.get(dynoId) === mine) this.followers.delete(dynoId);
    };
  }

  /** The dyno's last `n` lines (at most keepLines). */
  recent(dynoId: string, n = KEEP_LINES): string[] {
    return (this.dynos.get(dynoId)?.recent ?? []).slice(-Math.min(n, this.opts.keepLines ?? KEEP_LINES));
  }

  /** Queued lines, oldest first, up to `maxLines` and about `maxBytes` of text (a batch must
   * fit a WebSocket frame), and how many were dropped since the last take. */
  take(maxLines: number, maxBytes = 512 * 1024): { lines: ShippedLine[]; dropped: number } | undefined {
    this.dropOver(this.opts.queueLines ?? QUEUE_LINES);
    if (this.queue.length === 0 && this.droppedLines === 0) return undefined;
    let n = 0;
    let bytes = 0;
    while (n < this.queue.length && n < maxLines) {
      const q = this.queue[n]!;
      bytes += q.line.length * 3 + q.dynoId.length + q.app.length + 40;
      if (n > 0 && bytes > maxBytes) break;
      n++;
    }
    const lines = this.queue.splice(0, n);
    const dropped = this.droppedLines;
    this.droppedLines = 0;
    this.shippedTotal += lines.length;
    this.droppedTotal += dropped;
    return { lines, dropped };
  }

  /** Lines taken for shipping and lines dropped (reported), since the agent started. */
  totals(): { shipped: number; dropped: number } {
    return { shipped: this.shippedTotal, dropped: this.droppedTotal + this.droppedLines };
  }

  get queued(): number {
    return Math.min(this.queue.length, this.opts.queueLines ?? QUEUE_LINES);
  }

  /** Lines dropped and not yet reported. */
  get dropped(): number {
    return this.droppedLines;
  }

  /** One round over every followed log (the timer's work; tests call it directly). */
  async poll(): Promise<void> {
    const reads: Promise<void>[] = [];
    for (const f of this.dynos.values()) {
      // A quiet dyno costs one synchronous stat (LogReader.changed) and nothing more.
      const reader = f.reader;
      if (reader?.changed()) reads.push(reader.read((r) => this.record(f, r)));
    }
    await Promise.all(reads);
  }

  private entry(d: { dynoId: string; app: string; name: string }): Followed {
    let f = this.dynos.get(d.dynoId);
    if (!f) {
      f = { ...d, recent: [] };
      this.dynos.set(d.dynoId, f);
    }
    return f;
  }

  /** Joins partial records (a line the monitor wrote in pieces) before rendering. */
  private record(f: Followed, r: LogRecord): void {
    if (f.open && f.open.stream === r.stream) r = { ...f.open, text: f.open.text + r.text, partial: r.partial };
    else if (f.open) this.render(f, f.open);
    f.open = undefined;
    if (r.partial && Buffer.byteLength(r.text) < MAX_LINE_BYTES) {
      f.open = r;
      return;
    }
    this.render(f, r);
  }

  private render(f: Followed, r: LogRecord): void {
    for (const piece of splitLine(r.text)) this.add(f, `${r.time} app[${f.name}]: ${piece}`);
  }

  /** Trimming is amortized: a ring is cut back to its bound once it holds an eighth more, so
   * a chatty dyno (or a full queue while the link is down) does not shift 1,500 or 10,000
   * array slots for every line. */
  private add(f: Followed, line: string): void {
    f.recent.push(line);
    for (const follow of this.followers.get(f.dynoId) ?? []) follow(line);
    const keep = this.opts.keepLines ?? KEEP_LINES;
    if (f.recent.length > keep + (keep >> 3)) f.recent.splice(0, f.recent.length - keep);
    this.queue.push({ dynoId: f.dynoId, app: f.app, line });
    const max = this.opts.queueLines ?? QUEUE_LINES;
    if (this.queue.length > max + (max >> 3)) this.dropOver(max);
  }

  private dropOver(max: number): void {
    const over = this.queue.length - max;
    if (over <= 0) return;
    this.queue.splice(0, over);
    this.droppedLines += over;
  }
}
