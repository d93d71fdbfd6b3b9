// The record of every dyno exit (issue 14, item 4), kept for the person on call: the last
// EXITS_KEPT exits of each dyno, in memory, served at `GET /v1/dynos/:idOrName/exits`
// (agent/diagnostics/server.ts). One owner for the host (this object); each dyno's
// exit-record hook (exit-record-hook.ts) adds its container's record just before the container
// is removed, and says when the dyno is gone.
//
// Bounds, because a crash loop makes a record every backoff and a host runs hundreds of dynos:
// - EXITS_KEPT per dyno. Five shows whether a dyno dies the same way every time (a crash loop)
//   or changed (the last release); the older ones said the same, and the decision log
//   (agent/diagnostics/decisions.ts) keeps the count of restarts.
// - A dyno that is down (stopped for good) keeps its records GONE_KEPT_MS, so that whoever is
//   paged for it in the night can still read in the morning why it died; at most
//   MAX_GONE_DYNOS such dynos, the oldest gone dropped first.
// - In total about BUDGET_BYTES of text (a record is mostly its log lines, each cut to
//   EXIT_LINE_CHARS): past it the oldest records of any dyno go first.
// In memory only: after an agent restart they start empty, as the decision log does; an exit
// while the agent was down is recorded (cause `lost`, or the exit found at re-adoption).
import type { ExitSummary } from '../../shared/protocol.js';
import { realClock, type Clock } from '../lib/clock.js';

export const EXITS_KEPT = 5;
export const EXIT_LINES = 50;
/** A log line may be 10,000 bytes (log-shipper.ts); an exit's line is cut to this. */
export const EXIT_LINE_CHARS = 1_000;
export const GONE_KEPT_MS = 24 * 60 * 60_000;
export const MAX_GONE_DYNOS = 500;
/** Roughly 16 MiB of text: ~300 dynos with 5 records of 50 long lines each, far more with
 * ordinary lines (a typical line is under 200 characters). */
export const BUDGET_BYTES = 16 * 1024 * 1024;
/** The summary in the `crashed` event (shared/protocol.ts ExitSummary). */
export const SUMMARY_LINES = 10;
export const SUMMARY_LINE_CHARS = 200;

/** How the container's life ended. */
export type ExitCause =
  | 'crashed' // it exited without being asked (or was killed: R10, R15, the kernel's OOM kill)
  | 'stopped' // a stop: SIGTERM, the grace, SIGKILL if it ran out (R12)
  | 'cycled' // daily cycling
  | 'launch_failed' // its start failed after the container existed
  | 'lost'; // gone when the agent came back: nothing of it was left to read

export interface ExitRecord {
  dynoId: string;
  dyno: string;
  app: string;
  release: string | null;
  /** The dyno's container number in this agent process (1, then each restart and cycle). */
  incarnation: number;
  /** The container was taken over after an agent restart. */
  adopted: boolean;
  /** When the exit was recorded (the container was about to be removed). */
  at: string;
  cause: ExitCause;
  code: number | null;
  signal: string | null;
  /** Why the dyno is reported crashed or down: R10, R12, R15, DYNO_CRASHED (shared/errors.ts). */
  reason: { code: string; message: string } | null;
  oomKilled: boolean;
  quotaBytes: number;
  peakMemoryBytes: number | null;
  throttledPeriods: number | null;
  restartCount: number;
  /** Web dynos: container start to $PORT accepting; null for workers and unbound web dynos. */
  bindMs: number | null;
  /** Container start (as this process saw it) to the exit; null for an adopted container. */
  ranMs: number | null;
  /** The last EXIT_LINES lines of its log (app and slipway lines), oldest first. */
  lines: string[];
}

interface Kept {
  dynoId: string;
  name: string;
  records: { record: ExitRecord; bytes: number }[];
  /** monotonic() when the dyno went down. */
  goneAt?: number;
}

export function cutLine(line: string, max: number): string {
  return line.length <= max ? line : `${line.slice(0, max - 1)}…`;
}

/** The part of a record that rides in the `crashed` event. */
export function exitSummary(r: ExitRecord): ExitSummary {
  return {
    code: r.code, signal: r.signal, oomKilled: r.oomKilled, peakMemoryBytes: r.peakMemoryBytes,
    throttledPeriods: r.throttledPeriods, restartCount: r.restartCount, bindMs: r.bindMs,
    lines: r.lines.slice(-SUMMARY_LINES).map((l) => cutLine(l, SUMMARY_LINE_CHARS)),
  };
}

export interface ExitRecordsOptions {
  clock?: Pick<Clock, 'monotonic'>;
  /** The log shipper's recent lines of a dyno (LogShipper.recent): the app's and slipway's,
   * shipped or not. Without it, or when it has none, the hook reads the log file's tail. */
  recentLines?: (dynoId: string, n: number) => string[];
  kept?: number;
  goneKeptMs?: number;
  maxGone?: number;
  budgetBytes?: number;
}

export class ExitRecords {
  private readonly dynos = new Map<string, Kept>();
  private bytes = 0;
  private readonly clock: Pick<Clock, 'monotonic'>;

  constructor(private readonly o: ExitRecordsOptions = {}) {
    this.clock = o.clock ?? realClock;
  }

  recentLines(dynoId: string, n: number): string[] {
    return this.o.recentLines?.(dynoId, n) ?? [];
  }

  add(record: ExitRecord): void {
    this.prune();
    let k = this.dynos.get(record.dynoId);
    if (!k) {
      k = { dynoId: record.dynoId, name: record.dyno, records: [] };
      this.dynos.set(record.dynoId, k);
    }
    delete k.goneAt;
    const bytes = 400 + record.lines.reduce((n, l) => n + l.length, 0);
    k.records.push({ record, bytes });
    this.bytes += bytes;
    while (k.records.length > (this.o.kept ?? EXITS_KEPT)) this.bytes -= k.records.shift()!.bytes;
    this.trimToBudget();
  }

  /** The dyno is down: its records are kept GONE_KEPT_MS more. */
  gone(dynoId: string): void {
    const k = this.dynos.get(dynoId);
    if (k) k.goneAt = this.clock.monotonic();
    this.prune();
  }

  /** Oldest first. `dyno` is an id, or a name (web.1: every dyno of that name, in time order);
   * undefined when no record names it. */
  list(dyno: string): ExitRecord[] | undefined {
    this.prune();
    const byId = this.dynos.get(dyno);
    if (byId) return byId.records.map((r) => r.record);
    const named = [...this.dynos.values()].filter((k) => k.name === dyno);
    if (named.length === 0) return undefined;
    return named.flatMap((k) => k.records.map((r) => r.record)).sort((a, b) => a.at.localeCompare(b.at));
  }

  /** Records held, and their approximate bytes (tests, diagnostics). */
  get size(): { dynos: number; records: number; bytes: number } {
    let records = 0;
    for (const k of this.dynos.values()) records += k.records.length;
    return { dynos: this.dynos.size, records, bytes: this.bytes };
  }

  private drop(k: Kept): void {
    for (const r of k.records) this.bytes -= r.bytes;
    this.dynos.delete(k.dynoId);
  }

  private prune(): void {
    const now = this.clock.monotonic();
    const gone = [...this.dynos.values()].filter((k) => k.goneAt !== undefined).sort((a, b) => a.goneAt! - b.goneAt!);
    const maxGone = this.o.maxGone ?? MAX_GONE_DYNOS;
    gone.forEach((k, i) => {
      if (now - k.goneAt! >= (this.o.goneKeptMs ?? GONE_KEPT_MS) || i < gone.length - maxGone) this.drop(k);
    });
  }

  private trimToBudget(): void {
    const budget = this.o.budgetBytes ?? BUDGET_BYTES;
    while (this.bytes > budget) {
      let oldest: Kept | undefined;
      for (const k of this.dynos.values()) {
        if (k.records.length > 0 && (!oldest || k.records[0]!.record.at < oldest.records[0]!.record.at)) oldest = k;
      }
      if (!oldest) return;
      this.bytes -= oldest.records.shift()!.bytes;
      if (oldest.records.length === 0) this.dynos.delete(oldest.dynoId);
    }
  }
}
