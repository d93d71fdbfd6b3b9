// The hooks of one dyno (hooks.ts), in the order each point of its life calls them: the record
// is written before anything else exists (records-hook.ts), the container's log is followed
// before anything is reported about it (logs-hook.ts), an attached one-off's streams
// (attach-hook.ts), each exit recorded once the log is read
// to its end (exit-record-hook.ts), then crash restarts, the memory watch
// (R14/R15), the boot deadline (R10) and daily cycling. Optional parts the deps leave out
// (records and logs in unit tests, cycling when turned off) have no hook. The dyno's network is
// not a hook: like its port, the launcher holds it (launch.ts).
import type { DynoDeps } from './dyno-deps.js';
import { BootDeadlineHook } from './boot-deadline-hook.js';
import { CyclingHook } from './cycling-hook.js';
import { HookList, type DynoControl } from './hooks.js';
import { LogsHook } from './logs-hook.js';
import { MemoryWatchHook, type MemoryWatchSettings } from './memory-watch-hook.js';
import { RecordsHook } from './records-hook.js';
import { RestartsHook } from './restarts-hook.js';
import { ExitRecordHook, type ExitFacts } from './exit-record-hook.js';
import { DynoMetricsHook } from '../metrics/dyno-metrics-hook.js';
import { AttachHook } from './attach-hook.js';

export interface DynoHooks {
  list: HookList;
  /** The two the owner also reads: restart pending and crash count; the memory sample. */
  restarts: RestartsHook;
  memoryWatch: MemoryWatchHook;
  /** The summary of the last exit, for the `crashed` report. */
  exitRecord: ExitRecordHook;
}

export function dynoHooks(dyno: DynoControl & ExitFacts, deps: DynoDeps, memory: MemoryWatchSettings): DynoHooks {
  const restarts = new RestartsHook(dyno, deps.restartPolicy, deps.decisions);
  const memoryWatch = new MemoryWatchHook(dyno, deps.driver, memory, deps.decisions);
  // After the logs hook: its predestroy has read the log to its end when the exit is recorded.
  const exitRecord = new ExitRecordHook(dyno, deps.driver, { exits: deps.exits, restartCount: () => restarts.count });
  const list = new HookList([
    ...(deps.records ? [new RecordsHook(dyno, deps.records)] : []),
    ...(deps.logs ? [new LogsHook(dyno, deps.driver, deps.logs)] : []),
    // An attached one-off's streams (`slipway run`); its predestroy sends the exit message.
    ...(deps.attach && dyno.spec.attach ? [new AttachHook(dyno, deps.driver, deps.attach)] : []),
    exitRecord,
    restarts,
    memoryWatch,
    new BootDeadlineHook(dyno, deps.settings, deps.decisions),
    ...(deps.cycling ? [new CyclingHook(dyno, deps.cycling)] : []),
    ...(deps.metrics ? [new DynoMetricsHook(dyno, deps.driver, deps.metrics)] : []),
  ], dyno.log);
  return { list, restarts, memoryWatch, exitRecord };
}
