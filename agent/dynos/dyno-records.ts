// What the agent must remember of each dyno across its own restarts, so that it can re-adopt
// the dyno instead of killing or duplicating it: `<stateDir>/agent/dynos/<id>.json`, one file
// per dyno, written atomically by the dyno's owner (Dyno) and removed when the dyno is down.
// The runtime's side (container id, pid, monitor) is the driver's handle.json in the dyno's
// own dir; this record is the platform's side: the spec (with its config vars, hence 0600 in
// a 0700 dir), the web port it holds, and whether a stop was under way.
//
// A file that is unreadable, not a record, or written by a newer agent is never guessed at:
// readAll() reports it, moves it aside as `<id>.json.bad-<time>` for the operator, and the
// dyno's container (if any) is then treated as owned by nobody.
//
// A write that fails (a full or failing disk) is kept and retried, newest record per dyno,
// with backoff (RECORD_RETRY_*), until it lands or the dyno's record is removed: a dyno that
// kept running through a disk outage is re-adopted after the next agent restart all the same.
// Writes, retries and the removal of one dyno's record run one at a time in the order asked,
// so a retry never resurrects a removed record. The streak is logged once when it begins and
// once when it ends; every failure is also told to `onWriteError` (the host's pressure).
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { realClock, type Clock } from '../lib/clock.js';
import { DynoSpec } from '../../shared/protocol.js';
import type { Logger } from '../../shared/log.js';

/** The first retry of a failed record write, doubling up to the cap: a disk freed within
 * seconds gets its records back within seconds, a disk that stays broken sees a write of each
 * pending record twice a minute at most (the same cap as the event journal's). */
export const RECORD_RETRY_INITIAL_MS = 1_000;
export const RECORD_RETRY_MAX_MS = 30_000;

/** Bumped when the record's shape changes incompatibly. */
export const RECORD_VERSION = 1;

export const DynoRecord = Type.Object({
  spec: DynoSpec,
  port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
  /** The container's network (agent/network/host-network.ts), so that a re-adopted dyno keeps
   * it and an agent restart can tell it from an orphan. Absent in records of agents before
   * per-dyno networks (and without one): those dynos share the host's. */
  network: Type.Optional(Type.Object({
    netns: Type.String({ pattern: '^[a-z][a-z0-9]*-[0-9a-f]{8}$' }),
    address: Type.String({ pattern: '^[0-9]{1,3}(\\.[0-9]{1,3}){3}$' }),
    hostVeth: Type.String({ pattern: '^sw[0-9a-f]{10}$' }),
  }, { additionalProperties: false })),
  /** Set before the first signal of a stop: a re-adopted dyno finishes its stop. */
  stopping: Type.Optional(Type.Object({ graceMs: Type.Integer({ minimum: 0 }) }, { additionalProperties: false })),
}, { additionalProperties: false });
export type DynoRecord = Static<typeof DynoRecord>;

const File = Type.Object({ version: Type.Literal(RECORD_VERSION), record: DynoRecord }, { additionalProperties: false });
const checkFile = TypeCompiler.Compile(File);

export interface BadRecord { id: string; file: string; problem: string }

export interface DynoRecordsOptions {
  /** Told of every failed write (start.ts: the host's pressure, agent/host/pressure.ts, so that
   * a full or failing disk refuses new dynos). */
  onWriteError?: (err: unknown) => void;
  log?: Logger;
  clock?: Clock;
}

export class DynoRecords {
  /** Records whose last write failed, newest per dyno, until written or removed. */
  private readonly unwritten = new Map<string, DynoRecord>();
  /** The tail of each dyno's writes and removal, which run one at a time. */
  private readonly chains = new Map<string, Promise<void>>();
  private retryTimer: unknown;
  private retries = 0;
  private failingSince: number | undefined;
  private readonly clock: Clock;

  constructor(readonly dir: string, private readonly o: DynoRecordsOptions = {}) {
    this.clock = o.clock ?? realClock;
  }

  private file(id: string): string {
    return join(this.dir, `${id}.json`);
  }

  /** Writes the record; a failure is thrown (the caller logs it) and the record is retried. */
  write(record: DynoRecord): Promise<void> {
    const id = record.spec.id;
    return this.serial(id, async () => {
      try {
        await this.writeNow(record);
        this.unwritten.delete(id);
      } catch (err) {
        this.unwritten.set(id, record);
        this.failed(err);
        throw err;
      }
    });
  }

  remove(id: string): Promise<void> {
    return this.serial(id, async () => {
      this.unwritten.delete(id);
      await rm(this.file(id), { force: true });
    });
  }

  /** Records not yet on disk because their writes failed (diagnostics, tests). */
  get pending(): number {
    return this.unwritten.size;
  }

  /** Stops retrying (the agent is stopping); what is pending stays unwritten. */
  close(): void {
    this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  private async writeNow(record: DynoRecord): Promise<void> {
    const file = this.file(record.spec.id);
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      await writeFileAtomic(file, JSON.stringify({ version: RECORD_VERSION, record }) + '\n', 0o600);
    } catch (err) {
      // writeFileAtomic leaves its temp file when the write or the fsync fails (it removes it
      // only when the rename does): retries on a full disk would pile them up.
      const prefix = `${basename(file)}.tmp-`;
      const names = await readdir(this.dir).catch(() => [] as string[]);
      await Promise.all(names.filter((n) => n.startsWith(prefix)).map((n) => rm(join(this.dir, n), { force: true }).catch(() => undefined)));
      throw err;
    }
  }

  private serial(id: string, step: () => Promise<void>): Promise<void> {
    const run = (this.chains.get(id) ?? Promise.resolve()).catch(() => undefined).then(step);
    const tail = run.catch(() => undefined);
    this.chains.set(id, tail);
    void tail.then(() => {
      if (this.chains.get(id) === tail) this.chains.delete(id);
    });
    return run;
  }

  private failed(err: unknown): void {
    this.o.onWriteError?.(err);
    if (this.failingSince === undefined) {
      this.failingSince = this.clock.monotonic();
      this.o.log?.warn({ err, pending: this.unwritten.size }, 'dyno records cannot be written; the dynos run on and the records are retried until they land');
    }
    if (this.retryTimer === undefined) {
      const ms = Math.min(RECORD_RETRY_MAX_MS, RECORD_RETRY_INITIAL_MS * 2 ** this.retries);
      this.retries += 1;
      this.retryTimer = this.clock.setTimeout(() => {
        this.retryTimer = undefined;
        void this.retry();
      }, ms);
    }
  }

  private async retry(): Promise<void> {
    const attempts = [...this.unwritten].map(([id, record]) => this.serial(id, async () => {
      // Removed, or written newer, since: nothing of this one is wanted any more.
      if (this.unwritten.get(id) !== record) return;
      await this.writeNow(record);
      if (this.unwritten.get(id) === record) this.unwritten.delete(id);
    }));
    const failures = (await Promise.allSettled(attempts)).flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    if (failures.length > 0) return this.failed(failures[0]);
    if (this.unwritten.size > 0) return this.failed(new Error('records still pending'));
    if (this.failingSince !== undefined) this.o.log?.info({ failedForMs: this.clock.monotonic() - this.failingSince }, 'dyno records written again');
    this.failingSince = undefined;
    this.retries = 0;
  }

  /** Every valid record, and the files that were not (moved aside). */
  async readAll(): Promise<{ records: DynoRecord[]; bad: BadRecord[] }> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return { records: [], bad: [] };
    }
    const records: DynoRecord[] = [];
    const bad: BadRecord[] = [];
    for (const name of names.sort()) {
      if (!name.endsWith('.json')) {
        // A temp file of a write the agent did not finish: the old record (or none) stands.
        if (name.includes('.json.tmp-')) await rm(join(this.dir, name), { force: true });
        continue;
      }
      const id = name.slice(0, -'.json'.length);
      const file = join(this.dir, name);
      const problem = await readRecord(file, id).then((r) => (typeof r === 'string' ? r : (records.push(r), undefined)));
      if (problem === undefined) continue;
      bad.push({ id, file, problem });
      await rename(file, `${file}.bad-${Date.now()}`).catch(() => undefined);
    }
    return { records, bad };
  }
}

async function readRecord(file: string, id: string): Promise<DynoRecord | string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    return `unreadable: ${(err as Error).message}`;
  }
  const version = (parsed as { version?: unknown } | null)?.version;
  if (typeof version === 'number' && version > RECORD_VERSION) return `written by a newer agent (record version ${version})`;
  if (!checkFile.Check(parsed)) {
    const first = checkFile.Errors(parsed).First();
    return `not a dyno record: ${first ? `${first.path || '/'} ${first.message}` : 'invalid'}`;
  }
  if (parsed.record.spec.id !== id) return `names dyno ${parsed.record.spec.id}, not ${id}`;
  return parsed.record;
}
