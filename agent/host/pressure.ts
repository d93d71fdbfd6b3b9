// The one owner of "can this host take new work now" as far as the local disk and the agent's
// file descriptors go (memory is the manager's admission, draining the drain command's). It is
// asked at every admission (DynoManager.start, the slug prefetch) and answers at once, from a
// sample at most SAMPLE_TTL_MS old:
//
//   STATE_DIR_FAILING  a write into the state dir failed with EIO or EROFS (any writer that
//                      reports here: dyno records, the event journal, this module's own probe),
//                      or the probe write has hung for PROBE_HANG_MS
//   STATE_DIR_FULL     the state dir's file system has less than its floor free (statfs), or a
//                      write failed with ENOSPC or EDQUOT
//   AGENT_FD_LIMIT     fewer than `fdHeadroom` descriptors are left under the agent's soft
//                      RLIMIT_NOFILE (/proc/self/fd against /proc/self/limits, both re-read:
//                      `prlimit --pid` may move the limit while the agent runs), or counting
//                      them failed with EMFILE (then none are left)
//
// A refusal never touches what runs: dynos keep being supervised, the link stays up. It ends by
// itself: a write failure counts until a probe write (create, write, fsync, unlink in
// `<stateDir>/agent`) succeeds after it; free space and descriptors are read again every tick.
// The probe runs every PROBE_INTERVAL_MS (so a failing disk is found even while nothing else
// writes), and soon after a failure with backoff (PROBE_RETRY_*) so that recovery is seen within
// seconds. When the verdict changes, it is logged once and `onChange` runs (start.ts: a
// capacity report goes out at once, whose `accepting` is false while a verdict stands, so the
// coordinator places new dynos elsewhere and comes back when it is true again). Every time it
// keeps is monotonic (clock.monotonic()): an NTP step neither keeps a stale sample for an hour
// nor ends a refusal early.
import { readdirSync, readFileSync, statfsSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { SlipwayError, type ErrorCode } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import { realClock, type Clock } from '../lib/clock.js';

/** An admission reuses a sample this young: a burst of 100 starts reads the disk and
 * /proc/self/fd once, and a verdict is at most this stale. */
export const SAMPLE_TTL_MS = 1_000;
/** The background tick: a verdict that ended is noticed (and reported) within this. */
export const TICK_MS = 2_000;
/** A probe write while all is well: one small fsync'd file every 10 s costs the disk nothing
 * measurable and finds a disk that fails while nothing else writes within 10 s. */
export const PROBE_INTERVAL_MS = 10_000;
/** After a failure the probe retries from 1 s, x2, up to 10 s: a freed disk is seen soon. */
export const PROBE_RETRY_INITIAL_MS = 1_000;
export const PROBE_RETRY_MAX_MS = 10_000;
/** A probe (4 KiB and an fsync) that has not finished in 5 s means a disk that hangs: a start
 * would hang in it too. */
export const PROBE_HANG_MS = 5_000;
/** Defaults of the config keys (agent/config/schema.ts). The floor sits well below the slug
 * cache's own (2 GiB, which eviction keeps): it is reached only when something else fills the
 * disk (dyno logs, upper dirs, an operator's files), and leaves room for the running dynos'
 * logs and records while new work goes elsewhere. */
export const DEFAULT_STATE_DIR_FLOOR_MB = 256;
/** A start needs a few descriptors at once (conmon's and runc's pipes, the log file, the
 * readiness probe's socket) and the agent itself some more (a redial, diagnostics requests):
 * 64 leaves room for several starts in flight and the link. */
export const DEFAULT_FD_HEADROOM = 64;

export type PressureCode = Extract<ErrorCode, 'STATE_DIR_FULL' | 'STATE_DIR_FAILING' | 'AGENT_FD_LIMIT'>;

/** A failed write into the state dir, as a writer reports it. */
export interface WriteFailure {
  /** Who wrote: 'dyno-record', 'journal', 'probe'. */
  where: string;
  /** errno code (ENOSPC, EIO, ...). */
  code: string;
  message: string;
  /** clock.monotonic() of the failure: only compared with other readings of it. */
  at: number;
}

/** A streak of failures a writer keeps (and retries) itself. */
export interface OngoingFailure {
  where: string;
  code: string;
  message: string;
  /** When the streak began, as the writer tells it: a new value is a new streak. */
  since: string;
}

/** The errno code at the start of a Node fs error message ("ENOSPC: no space left ..."). */
export function errnoCodeOf(message: string | null | undefined): string | undefined {
  return /^(E[A-Z0-9]+)\b/.exec(message ?? '')?.[1];
}

export interface PressureSample {
  freeBytes: number | undefined;
  openFds: number | undefined;
  fdLimit: number | undefined;
  /** The descriptors could not even be counted: EMFILE. */
  fdExhausted: boolean;
}

export interface PressureLimits {
  floorBytes: number;
  fdHeadroom: number;
}

export interface Verdict {
  code: PressureCode;
  message: string;
}

const FULL_CODES = new Set(['ENOSPC', 'EDQUOT']);
const FAILING_CODES = new Set(['EIO', 'EROFS']);

/** Whether an errno code is the disk's (and which verdict it gives); other failures (EACCES, a
 * bug) are not the host's pressure. */
export function diskFailureKind(code: string | undefined): 'full' | 'failing' | undefined {
  if (code === undefined) return undefined;
  if (FULL_CODES.has(code)) return 'full';
  if (FAILING_CODES.has(code)) return 'failing';
  return undefined;
}

/** The soft "Max open files" of /proc/<pid>/limits; undefined for "unlimited" or no such row. */
export function parseNofileSoft(limits: string): number | undefined {
  const m = /^Max open files\s+(\d+|unlimited)\s+/m.exec(limits);
  return m && m[1] !== 'unlimited' ? Number(m[1]) : undefined;
}

const mb = (bytes: number) => `${Math.floor(bytes / 1048576)} MB`;

/** Pure: the verdict of one sample and the write failure that still counts. Failing outranks
 * full, which outranks descriptors: the operator's first fix is the disk. */
export function judge(sample: PressureSample, failure: WriteFailure | undefined, limits: PressureLimits): Verdict | undefined {
  const kind = diskFailureKind(failure?.code);
  if (failure && kind === 'failing') {
    return { code: 'STATE_DIR_FAILING', message: `the state dir's disk is failing: ${failure.where} write failed with ${failure.code} (${failure.message})` };
  }
  if (sample.freeBytes !== undefined && sample.freeBytes < limits.floorBytes) {
    return { code: 'STATE_DIR_FULL', message: `the state dir's file system has ${mb(sample.freeBytes)} free, below its floor of ${mb(limits.floorBytes)}` };
  }
  if (failure && kind === 'full') {
    return { code: 'STATE_DIR_FULL', message: `the state dir's file system is full: ${failure.where} write failed with ${failure.code}` };
  }
  if (sample.fdExhausted) return { code: 'AGENT_FD_LIMIT', message: 'the agent has no file descriptor left (EMFILE)' };
  if (sample.openFds !== undefined && sample.fdLimit !== undefined && sample.fdLimit - sample.openFds < limits.fdHeadroom) {
    return { code: 'AGENT_FD_LIMIT', message: `the agent has ${sample.openFds} of ${sample.fdLimit} file descriptors open, fewer than ${limits.fdHeadroom} left` };
  }
  return undefined;
}

/** The next probe delay after `failures` failed probes in a row (0: all is well). */
export function probeDelay(failures: number): number {
  if (failures === 0) return PROBE_INTERVAL_MS;
  return Math.min(PROBE_RETRY_MAX_MS, PROBE_RETRY_INITIAL_MS * 2 ** (failures - 1));
}

export interface HostPressureOptions extends PressureLimits {
  /** The file system that is judged (statfs). */
  stateDir: string;
  /** The probe's file, in the dir the agent's own state lives in (`<stateDir>/agent`). */
  probeFile: string;
  log: Logger;
  clock?: Clock;
  /** Failures other writers keep themselves (the journal writer's status), read at each sample:
   * the streak that fails now, named by when it began (`since`, the writer's own clock). */
  sources?: (() => OngoingFailure | undefined)[];
  /** The verdict changed (start.ts: report capacity now). Must not throw. */
  onChange?: (verdict: Verdict | undefined) => void;
  /** Tests: where the descriptors are read (default /proc/self). */
  procSelf?: string;
}

export interface PressureStatus {
  accepting: boolean;
  code: PressureCode | null;
  message: string | null;
  sample: PressureSample;
  lastWriteFailure: WriteFailure | null;
}

export class HostPressure {
  private readonly clock: Clock;
  private sample: PressureSample = { freeBytes: undefined, openFds: undefined, fdLimit: undefined, fdExhausted: false };
  private sampledAt = -Infinity;
  /** The latest reported write failure, until a probe succeeds after it. */
  private failure: WriteFailure | undefined;
  private lastProbeOk = -Infinity;
  private probeStartedAt: number | undefined;
  private probeFailures = 0;
  private current: Verdict | undefined;
  private tickTimer: unknown;
  private probeTimer: unknown;
  private stopped = false;
  /** The streak of each source last seen, and when this module first saw it (its clock). */
  private readonly seen = new Map<number, { since: string; at: number }>();

  constructor(private readonly o: HostPressureOptions) {
    this.clock = o.clock ?? realClock;
  }

  /** Starts the tick and the first probe (at once). */
  start(): void {
    this.stopped = false;
    this.scheduleTick();
    this.scheduleProbe(0);
  }

  stop(): void {
    this.stopped = true;
    this.clock.clearTimeout(this.tickTimer);
    this.clock.clearTimeout(this.probeTimer);
  }

  /** The refusal for new work now, or undefined. Synchronous and cheap: an admission calls it. */
  refusal(): SlipwayError | undefined {
    const v = this.verdict();
    return v ? new SlipwayError(v.code, v.message) : undefined;
  }

  get accepting(): boolean {
    return this.verdict() === undefined;
  }

  /** A writer's failure: the disk's (ENOSPC, EDQUOT, EIO, EROFS) counts until a probe write
   * succeeds after it, and brings the next probe forward; any other is not the host's. */
  noteWriteFailure(where: string, err: unknown): void {
    if (this.record(where, err)) this.verdict();
  }

  /** Keeps a disk failure; whether it was one. */
  private record(where: string, err: unknown): boolean {
    const e = err as NodeJS.ErrnoException;
    if (!diskFailureKind(e?.code)) return false;
    this.failure = { where, code: e.code!, message: e.message, at: this.clock.monotonic() };
    this.sampledAt = -Infinity;
    this.probeSoon();
    return true;
  }

  /** Brings the next probe forward, unless one is in flight or already retrying. */
  private probeSoon(): void {
    if (this.probeFailures === 0 && this.probeStartedAt === undefined) this.scheduleProbe(PROBE_RETRY_INITIAL_MS);
  }

  status(): PressureStatus {
    const v = this.verdict();
    return { accepting: !v, code: v?.code ?? null, message: v?.message ?? null, sample: { ...this.sample }, lastWriteFailure: this.failure ? { ...this.failure } : null };
  }

  private verdict(): Verdict | undefined {
    const now = this.clock.monotonic();
    if (now - this.sampledAt >= SAMPLE_TTL_MS) {
      this.sample = this.read();
      this.sampledAt = now;
      this.readSources(now);
    }
    let v = judge(this.sample, this.failure, this.o);
    if (!v && this.probeStartedAt !== undefined && now - this.probeStartedAt >= PROBE_HANG_MS) {
      v = { code: 'STATE_DIR_FAILING', message: `a write into the state dir has not finished in ${Math.round((now - this.probeStartedAt) / 1000)} s` };
    }
    this.changed(v);
    return v;
  }

  private changed(v: Verdict | undefined): void {
    if (v?.code === this.current?.code) {
      this.current = v;
      return;
    }
    const was = this.current;
    this.current = v;
    if (v) this.o.log.warn({ code: v.code, was: was?.code ?? null, sample: this.sample }, `host refuses new work: ${v.message}`);
    else this.o.log.info({ was: was?.code ?? null, sample: this.sample }, 'host takes new work again: the state dir and file descriptors have room');
    try {
      this.o.onChange?.(v);
    } catch (err) {
      this.o.log.error({ err }, 'pressure change listener failed');
    }
  }

  /** Another writer's streak counts from when it was first seen here until a probe succeeds
   * after that: the disk then took a write, and that writer's own retry follows. */
  private readSources(now: number): void {
    (this.o.sources ?? []).forEach((source, i) => {
      const f = source();
      if (!f || !diskFailureKind(f.code)) {
        this.seen.delete(i);
        return;
      }
      let seen = this.seen.get(i);
      if (seen?.since !== f.since) {
        seen = { since: f.since, at: now };
        this.seen.set(i, seen);
        this.probeSoon();
      }
      if (seen.at > this.lastProbeOk && (!this.failure || seen.at > this.failure.at)) this.failure = { where: f.where, code: f.code, message: f.message, at: seen.at };
    });
  }

  private read(): PressureSample {
    const proc = this.o.procSelf ?? '/proc/self';
    let freeBytes: number | undefined;
    try {
      // statfs takes a path, no descriptor: it works at EMFILE too. bavail: what an
      // unprivileged writer may use (the root reserve of ext4 is not room for dynos).
      const st = statfsSync(this.o.stateDir);
      freeBytes = st.bavail * st.bsize;
    } catch (err) {
      this.record('statfs', err);
    }
    let openFds: number | undefined;
    let fdLimit: number | undefined;
    let fdExhausted = false;
    try {
      // The listing's own descriptor is in it.
      openFds = Math.max(0, readdirSync(`${proc}/fd`).length - 1);
      fdLimit = parseNofileSoft(readFileSync(`${proc}/limits`, 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EMFILE' || (err as NodeJS.ErrnoException).code === 'ENFILE') fdExhausted = true;
    }
    return { freeBytes, openFds, fdLimit, fdExhausted };
  }

  private scheduleTick(): void {
    if (this.stopped) return;
    this.tickTimer = this.clock.setTimeout(() => {
      this.sampledAt = -Infinity;
      this.verdict();
      this.scheduleTick();
    }, TICK_MS);
  }

  private scheduleProbe(ms: number): void {
    if (this.stopped) return;
    this.clock.clearTimeout(this.probeTimer);
    this.probeTimer = this.clock.setTimeout(() => void this.probe(), ms);
  }

  /** One small durable write; its outcome ends or keeps a write failure. */
  private async probe(): Promise<void> {
    if (this.probeStartedAt !== undefined) return;
    const started = this.clock.monotonic();
    this.probeStartedAt = started;
    try {
      const fh = await open(this.o.probeFile, 'w', 0o600);
      try {
        await fh.writeFile(Buffer.alloc(4096, 0x2e));
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rm(this.o.probeFile, { force: true });
      this.lastProbeOk = this.clock.monotonic();
      if (this.failure && this.failure.at <= started) this.failure = undefined;
      this.probeFailures = 0;
    } catch (err) {
      await rm(this.o.probeFile, { force: true }).catch(() => undefined);
      this.probeFailures += 1;
      const code = (err as NodeJS.ErrnoException).code;
      if (diskFailureKind(code)) this.noteWriteFailure('probe', err);
      // EMFILE is the descriptors' verdict (read() finds it), not the disk's.
    } finally {
      this.probeStartedAt = undefined;
    }
    this.sampledAt = -Infinity;
    this.verdict();
    this.scheduleProbe(probeDelay(this.probeFailures));
  }
}
