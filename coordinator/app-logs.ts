// The reference coordinator's log view: the last lines of each app, as its agents shipped
// them (`logs` batches), for `GET /apps/:app/logs`. In memory and bounded (1,500 lines per
// app, Heroku's `logs --num` maximum), and handed to the app's followers (`logs --tail`,
// log-tail.ts) as they arrive. Lines an agent reports dropped (its queue was full) are counted
// per agent and shown by /healthz.
import { lineMatches, type LogLineFilter, type LogTail } from './log-tail.js';

export const APP_LOG_LINES = 1_500;

export type LogListener = (line: string) => void;

export class AppLogs {
  private readonly apps = new Map<string, string[]>();
  private readonly droppedByAgent = new Map<string, number>();
  private readonly followers = new Map<string, Set<LogListener>>();
  private readonly tails = new Set<LogTail>();
  private tailsDropped = 0;

  constructor(private readonly keep = APP_LOG_LINES) {}

  add(agentId: string, lines: { app: string; line: string }[], dropped: number): void {
    for (const { app, line } of lines) {
      let ring = this.apps.get(app);
      if (!ring) this.apps.set(app, (ring = []));
      ring.push(line);
      if (ring.length > this.keep) ring.splice(0, ring.length - this.keep);
      for (const listener of this.followers.get(app) ?? []) listener(line);
    }
    if (dropped > 0) this.droppedByAgent.set(agentId, (this.droppedByAgent.get(agentId) ?? 0) + dropped);
  }

  /** The app's last `n` lines that pass the filter, oldest first (each agent's lines in its
   * own order). */
  tail(app: string, n = 100, filter: LogLineFilter = {}): string[] {
    const count = Math.max(0, Math.min(n, this.keep));
    if (count === 0) return [];
    return (this.apps.get(app) ?? []).filter((l) => lineMatches(l, filter)).slice(-count);
  }

  /** Calls `listener` with every line of the app from now on, until the returned function is
   * called. A listener must not block (log-tail.ts queues and drops on its own). */
  follow(app: string, listener: LogListener): () => void {
    let set = this.followers.get(app);
    if (!set) this.followers.set(app, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.followers.get(app) === set) this.followers.delete(app);
    };
  }

  /** A tail session (log-tail.ts) follows the app's lines that pass the filter, until the
   * returned function is called; /healthz counts what the sessions hold and dropped. */
  followTail(app: string, tail: LogTail, filter: LogLineFilter): () => void {
    this.tails.add(tail);
    const stop = this.follow(app, (line) => {
      if (lineMatches(line, filter)) tail.push(line);
    });
    return () => {
      if (!this.tails.delete(tail)) return;
      this.tailsDropped += tail.droppedTotal;
      stop();
    };
  }

  /** The tail sessions now: how many, the bytes they hold for slow readers, and the lines they
   * dropped (ended sessions included). */
  tailStats(): { sessions: number; bufferedBytes: number; droppedLines: number } {
    let bufferedBytes = 0;
    let droppedLines = this.tailsDropped;
    for (const t of this.tails) {
      bufferedBytes += t.bufferedBytes;
      droppedLines += t.droppedTotal;
    }
    return { sessions: this.tails.size, bufferedBytes, droppedLines };
  }

  dropped(): Record<string, number> {
    return Object.fromEntries(this.droppedByAgent);
  }
}
