// Record keeping, the dyno's side of re-adoption (the file format is dyno-records.ts's): the
// record is written before each container is created, so that an agent that dies from then on
// finds it and re-adopts (or restarts) the dyno instead of leaving it to nobody; rewritten with
// `stopping` when a stop begins, so that a re-adopted dyno finishes that stop; removed when
// the dyno will not run again (down, or crashed for good: nothing of it runs, and the next
// hello no longer names it).
//
// Writes and the removal go to the file one at a time, in the order they were asked for: a
// stop that begins while the launch's write is still on its way must not be overtaken by it,
// or a dyno that is down would leave a record and be resurrected by the next agent. After the
// removal nothing is written again. A failure (a full disk) is logged: the dyno runs on, but
// would not be re-adopted after an agent restart.
import type { DynoRecord, DynoRecords } from './dyno-records.js';
import type { ContainerRun, DynoControl, DynoHook } from './hooks.js';

export class RecordsHook implements DynoHook {
  readonly name = 'records';
  private queue: Promise<void> = Promise.resolve();
  private removed = false;

  constructor(
    private readonly dyno: Pick<DynoControl, 'spec' | 'log'>,
    private readonly records: Pick<DynoRecords, 'write' | 'remove'>,
  ) {}

  prestart(run: ContainerRun): Promise<void> {
    return this.write(run);
  }

  stopping(run: ContainerRun, graceMs: number): Promise<void> {
    return this.write(run, { graceMs });
  }

  retired(): Promise<void> {
    this.removed = true;
    return this.next(() => this.records.remove(this.dyno.spec.id).catch((err: unknown) => this.dyno.log.error({ err }, 'could not remove the dyno record')));
  }

  private write(run: Pick<ContainerRun, 'port' | 'network'>, stopping?: { graceMs: number }): Promise<void> {
    if (this.removed) return this.queue;
    const { port, network } = run;
    const record: DynoRecord = { spec: this.dyno.spec, ...(port !== undefined ? { port } : {}), ...(network ? { network } : {}), ...(stopping ? { stopping } : {}) };
    return this.next(() => this.records.write(record).catch((err: unknown) => this.dyno.log.error({ err }, 'could not write the dyno record; it is retried (dyno-records.ts)')));
  }

  private next(step: () => Promise<void>): Promise<void> {
    this.queue = this.queue.then(step);
    return this.queue;
  }
}
