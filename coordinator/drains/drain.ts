// One log drain of an app (Heroku's Logplex drains): the frames of the app's lines
// (logplex-frame.ts) queue here and go to the drain's transport (https-transport.ts,
// syslog-transport.ts) in order, one delivery at a time.
//
// - Bounded: the queue holds at most `maxQueuedBytes`; past it the oldest frames are dropped
//   and counted, and the next delivery starts with Logplex's notice of it
//   (`Error L10 (output buffer overflow): N messages dropped since T.`): a stalled drain costs
//   a bounded amount of memory and never holds up the app, the other drains or the coordinator.
// - A delivery is a batch of about `batchBytes` (Logplex's HTTPS drains: ~100 KiB). The
//   transport says what became of it: `delivered` (HTTPS 2xx, or written to the syslog stream),
//   `rejected` (HTTPS 4xx other than 429: the receiver will not take it, so it is dropped and
//   counted, never retried), or it throws (5xx, 429, a timeout, a refused or broken connection),
//   and the same batch is tried again, with its frame id, after a backoff (0.5 s doubling to
//   30 s, with jitter): the receiver can tell a retry from new lines.
import { randomBytes } from 'node:crypto';
import { overflowFrame } from './logplex-frame.js';

export const DRAIN_QUEUE_BYTES = 1024 * 1024;
export const DRAIN_BATCH_BYTES = 100 * 1024;
export const DRAIN_BACKOFF_MS = { baseMs: 500, capMs: 30_000 } as const;

export interface DrainBatch {
  frames: string[];
  /** Stays the same on every retry of the batch (HTTPS: Logplex-Frame-Id). */
  frameId: string;
}

export interface DrainTransport {
  deliver(batch: DrainBatch): Promise<'delivered' | 'rejected'>;
  close(): void;
}

export interface DrainStats {
  queuedFrames: number;
  queuedBytes: number;
  deliveredFrames: number;
  /** Dropped from the queue (overflow) and not delivered. */
  droppedFrames: number;
  /** Refused by the receiver (HTTPS 4xx) and not retried. */
  rejectedFrames: number;
  retries: number;
  lastError?: string;
}

export interface DrainOptions {
  transport: DrainTransport;
  maxQueuedBytes?: number;
  batchBytes?: number;
  backoff?: { baseMs: number; capMs: number };
  now?: () => Date;
  /** 0..1 of each backoff added at random (default 0.2; tests 0). */
  jitter?: number;
}

export class Drain {
  private readonly queue: string[] = [];
  private queuedBytes = 0;
  private dropped = 0;
  private droppedSince: Date | undefined;
  private inFlight: DrainBatch | undefined;
  private pumping = false;
  private closed = false;
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly counts = { deliveredFrames: 0, droppedFrames: 0, rejectedFrames: 0, retries: 0 };
  private lastError: string | undefined;
  private readonly now: () => Date;

  constructor(private readonly o: DrainOptions) {
    this.now = o.now ?? (() => new Date());
  }

  /** Queues a frame; never blocks. */
  push(frame: string): void {
    if (this.closed) return;
    this.queue.push(frame);
    this.queuedBytes += frame.length;
    const max = this.o.maxQueuedBytes ?? DRAIN_QUEUE_BYTES;
    while (this.queuedBytes > max && this.queue.length > 1) {
      this.queuedBytes -= this.queue.shift()!.length;
      this.droppedSince ??= this.now();
      this.dropped++;
      this.counts.droppedFrames++;
    }
    this.pump();
  }

  stats(): DrainStats {
    const batched = this.inFlight?.frames.reduce((n, f) => n + f.length, 0) ?? 0;
    return {
      queuedFrames: this.queue.length + (this.inFlight?.frames.length ?? 0), queuedBytes: this.queuedBytes + batched,
      ...this.counts, ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
    };
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.o.transport.close();
  }

  private pump(): void {
    if (this.pumping || this.closed || this.timer !== undefined) return;
    if (!this.inFlight) this.inFlight = this.nextBatch();
    if (!this.inFlight) return;
    const batch = this.inFlight;
    this.pumping = true;
    this.o.transport.deliver(batch).then((outcome) => {
      this.pumping = false;
      this.inFlight = undefined;
      this.attempt = 0;
      this.lastError = undefined;
      if (outcome === 'delivered') this.counts.deliveredFrames += batch.frames.length;
      else this.counts.rejectedFrames += batch.frames.length;
      this.pump();
    }, (err: unknown) => {
      this.pumping = false;
      this.lastError = err instanceof Error ? err.message : String(err);
      this.counts.retries++;
      const { baseMs, capMs } = this.o.backoff ?? DRAIN_BACKOFF_MS;
      const delay = Math.min(capMs, baseMs * 2 ** this.attempt++);
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.pump();
      }, delay + Math.random() * (this.o.jitter ?? 0.2) * delay);
      this.timer.unref();
    });
  }

  /** Up to batchBytes of frames, the overflow notice first when lines were dropped. */
  private nextBatch(): DrainBatch | undefined {
    if (this.queue.length === 0) return undefined;
    const frames: string[] = [];
    if (this.dropped > 0) {
      frames.push(overflowFrame(this.dropped, this.droppedSince ?? this.now(), this.now()));
      this.dropped = 0;
      this.droppedSince = undefined;
    }
    const limit = this.o.batchBytes ?? DRAIN_BATCH_BYTES;
    let bytes = 0;
    while (this.queue.length > 0 && (frames.length === 0 || bytes + this.queue[0]!.length <= limit)) {
      const f = this.queue.shift()!;
      this.queuedBytes -= f.length;
      bytes += f.length;
      frames.push(f);
    }
    return { frames, frameId: randomBytes(16).toString('hex') };
  }
}
