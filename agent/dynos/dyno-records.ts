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
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { DynoSpec } from '../../shared/protocol.js';

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

export class DynoRecords {
  constructor(readonly dir: string) {}

  private file(id: string): string {
    return join(this.dir, `${id}.json`);
  }

  async write(record: DynoRecord): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.file(record.spec.id), JSON.stringify({ version: RECORD_VERSION, record }) + '\n', 0o600);
  }

  async remove(id: string): Promise<void> {
    await rm(this.file(id), { force: true });
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
