// The record of each container's exit (issue 14, item 4): when a container of the dyno is about
// to be removed (predestroy: its cgroup and log file are still there, and the logs hook before
// this one has read the log to its end), this hook reads what the cgroup knows of its life (the
// OOM counter, the peak memory, the CPU throttling), the dyno's last EXIT_LINES log lines, and
// what its owner says of the end (crash, stop, cycle; the exit status and reason), and keeps
// the record (exit-records.ts). The record's summary rides in the `crashed` event: the owner
// asks summary() when it reports the crash (dyno.ts).
//
// Time to bind $PORT (web dynos) is measured here, on the dyno's monotonic clock, from the
// container's start as the hooks hear of it (poststart, when R10's deadline also arms) to its
// first `up`. A container taken over after an agent restart has no start this process saw:
// no bind time, no run time.
import type { ExitStatus, ExitSummary, DynoStateName } from '../../shared/protocol.js';
import type { RuntimeDriver } from '../runtime/driver.js';
import { EXIT_LINE_CHARS, EXIT_LINES, cutLine, exitSummary, type ExitCause, type ExitRecord, type ExitRecords } from './exit-records.js';
import type { ContainerRun, DynoControl, DynoHook } from './hooks.js';
import { tailLog } from './log-tail.js';

/** How a container's life ended, as its owner (dyno.ts) knew it when it began its cleanup. */
export interface RunEnd {
  cause: ExitCause;
  exit?: ExitStatus;
  /** The driver's exit said the kernel OOM-killed it. */
  oomKilled?: boolean;
}

/** What the hook asks of the dyno's owner beyond DynoControl. */
export interface ExitFacts {
  ended(run: ContainerRun): RunEnd | undefined;
}

export class ExitRecordHook implements DynoHook {
  readonly name = 'exit-record';
  private run: ContainerRun | undefined;
  private startedAt: number | undefined;
  private bindMs: number | null = null;
  private pending: ExitSummary | undefined;

  constructor(
    private readonly dyno: DynoControl & ExitFacts,
    private readonly driver: Pick<RuntimeDriver, 'stats' | 'log'>,
    private readonly o: { exits?: ExitRecords | undefined; restartCount: () => number },
  ) {}

  /** The summary of the exit just recorded, for the `crashed` report; once. */
  summary(): ExitSummary | undefined {
    const s = this.pending;
    this.pending = undefined;
    return s;
  }

  prestart(): Promise<void> {
    this.pending = undefined;
    return Promise.resolve();
  }

  poststart(run: ContainerRun): void {
    this.run = run;
    this.startedAt = run.adopted ? undefined : this.dyno.clock.monotonic();
    this.bindMs = null;
  }

  entered(to: DynoStateName, from: DynoStateName | null): void {
    if (to === 'up' && from === 'starting' && this.run?.port !== undefined && this.startedAt !== undefined && this.bindMs === null) {
      this.bindMs = Math.round(this.dyno.clock.monotonic() - this.startedAt);
    }
    if (to === 'down') this.o.exits?.gone(this.dyno.spec.id);
  }

  async predestroy(run: ContainerRun): Promise<void> {
    const end = this.dyno.ended(run);
    // A launch that failed before its container existed left nothing to read: no exit.
    if (!end || (!run.handle && end.cause !== 'lost')) return;
    const { spec } = this.dyno;
    const stats = run.handle ? await this.driver.stats(run.handle).catch(() => undefined) : undefined;
    // The shipper's lines (the agent's own among them) and the file's tail: the file has what
    // the shipper never saw (a container re-adopted is followed from the end), the shipper
    // what the file lacks (slipway lines). Merged in time order, each line once.
    const recent = this.o.exits?.recentLines(spec.id, EXIT_LINES) ?? [];
    const tail = run.handle ? await tailLog(this.driver.log(run.handle), spec.name, EXIT_LINES).catch(() => []) : [];
    const lines = mergeLines(recent, tail);
    const { reason } = this.dyno.status();
    const current = run === this.run;
    const record: ExitRecord = {
      dynoId: spec.id, dyno: spec.name, app: spec.app, release: spec.release ?? null,
      incarnation: run.n, adopted: run.adopted, at: new Date(this.dyno.clock.now()).toISOString(),
      cause: end.cause, code: end.exit?.code ?? null, signal: end.exit?.signal ?? null,
      reason: reason ? { code: reason.code, message: reason.message } : null,
      oomKilled: end.oomKilled === true || (stats?.oomKills ?? 0) > 0,
      quotaBytes: spec.size.memoryMb * 1024 * 1024,
      peakMemoryBytes: stats?.peakMemoryBytes ?? null,
      throttledPeriods: stats?.throttledPeriods ?? null,
      restartCount: this.o.restartCount(),
      bindMs: current ? this.bindMs : null,
      ranMs: current && this.startedAt !== undefined ? Math.round(this.dyno.clock.monotonic() - this.startedAt) : null,
      lines: lines.slice(-EXIT_LINES).map((l) => cutLine(l, EXIT_LINE_CHARS)),
    };
    this.o.exits?.add(record);
    this.pending = end.cause === 'stopped' || end.cause === 'cycled' ? undefined : exitSummary(record);
    this.dyno.log.info({
      cause: record.cause, code: record.code, signal: record.signal, oomKilled: record.oomKilled,
      peakMemoryBytes: record.peakMemoryBytes, throttledPeriods: record.throttledPeriods, restartCount: record.restartCount, bindMs: record.bindMs,
    }, 'dyno exit recorded');
  }
}

/** A rendered line's time (`TIMESTAMP app[web.1]: text`), in ms; conmon writes nanoseconds and
 * a local offset, the agent milliseconds and Z. NaN sorts first. */
export function lineTime(line: string): number {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)\s/.exec(line);
  return m ? Date.parse(`${m[1]}${(m[2] ?? '').slice(0, 4)}${m[3]}`) : Number.NaN;
}

/** Both lists of lines in time order (stable: lines of one instant keep their order), each line once. */
export function mergeLines(a: readonly string[], b: readonly string[]): string[] {
  const seen = new Set<string>();
  const all: { line: string; at: number; i: number }[] = [];
  for (const line of [...a, ...b]) {
    if (seen.has(line)) continue;
    seen.add(line);
    all.push({ line, at: lineTime(line), i: all.length });
  }
  all.sort((x, y) => ((x.at || 0) - (y.at || 0)) || x.i - y.i);
  return all.map((x) => x.line);
}
