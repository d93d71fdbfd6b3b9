// One dyno's owner. This object is the ONLY writer of the dyno's state: its known state
// (`state`) and its desired state (`desired`: up until a stop is asked for). Every change of
// state, the first report included, goes through `enter()`, which checks the table below, runs
// the entry actions (the endpoint, a `slipway[web.1]` line, each hook's `entered`) and reports
// the change to the listener. Everything else reads `status()`.
//
//   (none)   -> starting (a new dyno) | up | starting | crashed (re-adopted): `from: null`
//   starting -> up | crashed | stopping
//   up       -> crashed | stopping | starting (daily cycling)
//   crashed  -> starting (crash restart) | stopping | down
//   stopping -> down
//   down     -> (terminal)
//
// Each container of the dyno (an Incarnation: the first, every crash restart, every cycle, or
// the one a re-adoption took over) is launched by launch.ts. The other concerns of the dyno's
// life are hooks, one file each (hooks.ts), called in the order of dyno-hooks.ts. Time
// (restart delays, cycling, R10, the R14 rate limit) is one injected clock (clock.ts).
import type { DynoSpec, DynoStateName, DynoStatus, Endpoint, ExitStatus, WireError } from '../../shared/protocol.js';
import type { Logger } from '../../shared/log.js';
import type { DynoExit, LogSource, RecoveredDyno } from '../runtime/driver.js';
import { realClock, type Clock } from '../lib/clock.js';
import type { DynoDeps } from './dyno-deps.js';
import { dynoHooks, type DynoHooks } from './dyno-hooks.js';
import type { DynoRecord } from './dyno-records.js';
import type { ContainerRun, DynoControl, HookList } from './hooks.js';
import type { ExitFacts, RunEnd } from './exit-record-hook.js';
import { Incarnation, Launcher } from './launch.js';
import { DEFAULT_MEMORY_SETTINGS } from './memory-policy.js';
import type { DynoMemory } from './memory-watch-hook.js';
import { reasons } from './reasons.js';

export type { DynoDeps, DynoSettings, SlugProvider } from './dyno-deps.js';
export type { DynoMemory } from './memory-watch-hook.js';

export const TRANSITIONS: Readonly<Record<DynoStateName, readonly DynoStateName[]>> = {
  starting: ['up', 'crashed', 'stopping'],
  up: ['crashed', 'stopping', 'starting'],
  crashed: ['starting', 'stopping', 'down'],
  stopping: ['down'],
  down: [],
};

/** What a dyno's first report may name: `starting` for a new dyno; what a re-adoption found. */
export const FIRST_STATES: readonly DynoStateName[] = ['starting', 'up', 'crashed'];

export class Dyno implements DynoControl, ExitFacts {
  private state: DynoStateName | null = null;
  private wanted: 'up' | 'down' = 'up';
  /** A function, so that a check after an await is not narrowed away by one before it. */
  private readonly isWanted = () => this.wanted === 'up';
  private since: Date;
  private endpoint: Endpoint | undefined;
  private exit: ExitStatus | undefined;
  private reason: WireError | undefined;
  private run = new Incarnation(1, false);
  private adopting: Promise<void> | undefined;
  private readonly launcher: Launcher;
  private readonly restarts: DynoHooks['restarts'];
  private readonly memoryWatch: DynoHooks['memoryWatch'];
  private readonly exitRecord: DynoHooks['exitRecord'];
  private readonly hooks: HookList;
  readonly log: Logger;
  readonly clock: Clock;

  constructor(readonly spec: DynoSpec, private readonly deps: DynoDeps) {
    this.clock = deps.clock ?? realClock;
    this.log = deps.log.child({ dynoId: spec.id, dyno: spec.name, app: spec.app });
    this.since = new Date(this.clock.now());
    const memory = { ...DEFAULT_MEMORY_SETTINGS, ...deps.memory };
    this.launcher = new Launcher(spec, deps, { ...deps.settings, r15Multiple: memory.r15Multiple }, this.log);
    const hooks = dynoHooks(this, deps, memory);
    this.hooks = hooks.list;
    this.restarts = hooks.restarts;
    this.memoryWatch = hooks.memoryWatch;
    this.exitRecord = hooks.exitRecord;
  }

  get id(): string { return this.spec.id; }
  get current(): DynoStateName { return this.state ?? 'starting'; }
  get desired(): 'up' | 'down' { return this.wanted; }
  get memoryBytes(): number { return this.spec.size.memoryMb * 1024 * 1024; }
  /** Crashed and waiting for its restart. */
  get restartPending(): boolean { return this.restarts.pending; }
  /** Crashes since the last healthy run or release (0 for a dyno that never crashed). */
  get crashCount(): number { return this.restarts.count; }

  status(): DynoStatus {
    const { id, app, type, name, release, size } = this.spec;
    return {
      id, app, type, name, state: this.current, memoryMb: size.memoryMb, since: this.since.toISOString(),
      ...(release !== undefined ? { release } : {}), ...(this.endpoint ? { endpoint: this.endpoint } : {}),
      ...(this.exit ? { exit: this.exit } : {}), ...(this.reason ? { reason: this.reason } : {}),
    };
  }

  /** The last memory sample of the running container, if it has been sampled. */
  memory(): DynoMemory | undefined { return this.memoryWatch.memory(); }
  /** R14/R15 from one sample (memory-watch-hook.ts); the manager calls it for every dyno. */
  sampleMemory(): Promise<void> { return this.memoryWatch.sample(this.run); }
  /** Where the dyno's output is, once its container exists. */
  logSource(): LogSource | undefined { return this.run.handle ? this.deps.driver.log(this.run.handle) : undefined; }

  /** Where the dyno runs, for operators (diagnostics): its container, process and network. */
  runtimeInfo(): { containerId: string; pid?: number; network?: { address: string; netns: string } } | undefined {
    const h = this.run.handle;
    const n = this.run.network;
    return h ? { containerId: h.containerId, ...(h.pid !== undefined ? { pid: h.pid } : {}), ...(n ? { network: { address: n.address, netns: n.netns } } : {}) } : undefined;
  }

  /** Reports `starting` and launches in the background; failures end in `crashed`. */
  begin(): void {
    this.enter('starting');
    this.launch(this.run);
  }

  // DynoControl: what the hooks may ask (hooks.ts).

  ended(run: ContainerRun): RunEnd | undefined {
    return run instanceof Incarnation ? run.ended : undefined;
  }

  live(run: ContainerRun): boolean {
    return run === this.run && run.handle !== undefined && !run.signal.aborted && this.isWanted();
  }

  system(text: string): void {
    this.deps.logs?.system({ dynoId: this.spec.id, app: this.spec.app, name: this.spec.name }, text);
  }

  ready(run: ContainerRun, endpoint: Endpoint): void {
    if (!this.live(run) || this.state !== 'starting') return;
    this.endpoint = endpoint;
    this.enter('up');
  }

  async kill(run: ContainerRun, reason: WireError): Promise<void> {
    if (!this.live(run) || this.reason) return;
    this.reason = reason;
    this.system(reason.message);
    await this.deps.driver.signal(run.handle!, 'SIGKILL').catch((err: unknown) => this.log.error({ err, code: reason.code }, 'killing the dyno failed'));
  }

  /** Daily cycling: `starting` is reported (routers drop the route), the container is stopped
   * Heroku style and removed, and a fresh one starts from the slug. Its exit is no crash. */
  async cycle(graceMs: number): Promise<void> {
    if (this.state !== 'up' || !this.isWanted()) return;
    const old = this.run;
    this.log.info({ source: `slipway[${this.spec.name}]` }, 'Cycling');
    this.system('Cycling');
    old.abort.abort();
    this.enter('starting');
    const stopped = await this.launcher.halt(old, graceMs);
    old.ended = { cause: 'cycled', ...(stopped ? { exit: stopped.exit } : {}) };
    await this.cleanup(old);
    if (!this.isWanted() || this.current !== 'starting') return;
    this.fresh();
    this.launch(this.run);
  }

  restart(): void {
    if (!this.isWanted() || this.state !== 'crashed') return;
    this.fresh();
    this.enter('starting');
    this.launch(this.run);
  }

  retire(): void {
    this.launcher.releaseSlug();
    void this.hooks.retired();
  }

  // The dyno's life.

  private launch(run: Incarnation): void {
    void this.launcher.launch(run, this.isWanted, () => this.hooks.prestart(run)).then(async (started) => {
      if (!started) return;
      await this.hooks.poststart(run);
      // A worker is up once its container runs; a web dyno once its port accepts (R10 hook).
      if (this.live(run) && run.port === undefined) this.enter('up');
      this.watch(run);
    }).catch((err: unknown) => this.failLaunch(err, run));
  }

  private watch(run: Incarnation): void {
    void this.deps.driver.wait(run.handle!).then((exit) => this.onExit(exit, run));
  }

  private async failLaunch(err: unknown, run: Incarnation): Promise<void> {
    const reason = reasons.startFailed(err);
    this.log.error({ err, code: reason.code }, 'dyno failed to start');
    if (!this.isWanted() || run !== this.run) return;
    this.reason = reason;
    run.abort.abort();
    run.ended = { cause: 'launch_failed' };
    await this.cleanup(run);
    if (this.state === 'starting') this.enter('crashed');
  }

  private async onExit(exit: DynoExit, run: Incarnation): Promise<void> {
    // A stop, a cycle or a failed launch ended this container's life first; they report.
    if (run !== this.run || run.signal.aborted) return;
    run.abort.abort();
    if (!this.isWanted()) return;
    this.exit = { code: exit.code, signal: exit.signal };
    // The reason of a kill (R10, R15) stands, unless the kernel's OOM kill came first.
    if (exit.oomKilled || !this.reason) {
      this.reason = reasons.exited(exit);
      this.system(this.reason.message);
    }
    this.log.warn({ exit: this.exit, reason: this.reason.code }, 'dyno exited');
    run.ended = { cause: 'crashed', exit: this.exit, oomKilled: exit.oomKilled };
    // The kernel decided this kill; the agent learns of it here (its R15 is memory-watch-hook.ts).
    if (exit.oomKilled) {
      this.deps.decisions?.about(this.spec, 'kill', 'R15: the kernel OOM-killed a process of the dyno at its memory limit', {
        cause: 'R15', code: 'DYNO_OOM_KILLED', by: 'kernel', exitCode: exit.code, signal: exit.signal, quotaBytes: this.memoryBytes,
      });
    }
    await this.cleanup(run);
    if (this.state === 'starting' || this.state === 'up') this.enter('crashed');
  }

  /** A new container, without what belonged to the previous one. */
  private fresh(): void {
    this.run = new Incarnation(this.run.n + 1, false);
    this.exit = undefined;
    this.reason = undefined;
  }

  /** Heroku's stop: report stopping (routers drop the route), SIGTERM all, grace, SIGKILL (R12), down. */
  async stop(graceMs: number): Promise<void> {
    if (this.state === null) await this.adopting;
    if (this.state === 'down' || this.state === 'stopping') return;
    this.wanted = 'down';
    const run = this.run;
    run.abort.abort();
    if (this.state !== 'crashed') {
      this.enter('stopping');
      await this.hooks.stopping(run, graceMs);
      const stopped = await this.launcher.halt(run, graceMs);
      if (stopped) this.exit = stopped.exit;
      run.ended = { cause: 'stopped', ...(stopped ? { exit: stopped.exit } : {}) };
      if (stopped?.forced) {
        this.reason = reasons.stopTimeout(graceMs);
        this.system(this.reason.message);
        this.deps.decisions?.about(this.spec, 'kill', `R12: still running ${graceMs / 1000} s after SIGTERM; SIGKILL`, {
          cause: 'R12', code: this.reason.code, graceMs, exitCode: stopped.exit.code, signal: stopped.exit.signal,
        });
      }
    }
    await this.cleanup(run);
    this.launcher.releaseSlug();
    await this.hooks.retired();
    this.enter('down');
  }

  /** Takes over a dyno that an earlier agent process started (the manager's recover()), from
   * its record and what its driver found (launch.ts adopt() says what its first report is). A
   * stop that was under way is finished. */
  adopt(found: RecoveredDyno | undefined, record: DynoRecord, hadHandle = found !== undefined): Promise<void> {
    this.adopting = this.takeOver(found, record, hadHandle);
    return this.adopting;
  }

  private async takeOver(found: RecoveredDyno | undefined, record: DynoRecord, hadHandle: boolean): Promise<void> {
    const run = this.run = new Incarnation(1, true);
    // A stop was under way: wanted down from the start (nothing restarts the dyno), and the
    // stop is finished once the first report is out.
    if (record.stopping) this.wanted = 'down';
    const { first, endpoint } = await this.launcher.adopt(run, found, record);
    // The outcome before the first report: a restart it schedules is decided after it.
    this.recordAdoption(found, first, record.stopping !== undefined, hadHandle);
    if (!run.handle) {
      this.reason = reasons.lost();
      this.log.warn({ source: `slipway[${this.spec.name}]` }, 'Dyno lost while the agent was down');
      run.ended = { cause: 'lost' };
      await this.cleanup(run);
    }
    this.endpoint = endpoint;
    this.enter(first);
    if (run.handle) {
      await this.hooks.poststart(run);
      this.watch(run);
    }
    if (record.stopping) await this.stop(record.stopping.graceMs);
  }

  /** The re-adoption's outcome, in the decision log: taken over as it was, or why not. */
  private recordAdoption(found: RecoveredDyno | undefined, state: DynoStateName, stopping: boolean, hadHandle: boolean): void {
    const d = this.deps.decisions;
    if (!d) return;
    const driver = this.deps.driver.name;
    if (found?.running) {
      d.about(this.spec, 'readopted', `re-adopted: container ${found.handle.containerId} still running, reported ${state}${stopping ? '; its stop is finished' : ''}`, {
        containerId: found.handle.containerId, pid: found.handle.pid ?? null, running: true, state, driver, stopping,
      });
    } else if (found) {
      d.about(this.spec, 'readopted', `re-adopted: container ${found.handle.containerId} exited while the agent was down; its exit is reported next`, {
        containerId: found.handle.containerId, running: false, state, driver, stopping,
      });
    } else {
      // No handle: no container was left (its start never finished, or it crashed and was
      // removed before the agent went down); a handle whose container the driver cannot find:
      // it went away while the agent was down.
      const why = hadHandle ? 'its container is gone' : 'no container was left of it';
      d.about(this.spec, 'readoption_failed', `not re-adopted: ${why}; reported crashed${stopping ? ' and stopped' : ' and restarted'}`, {
        why: hadHandle ? 'container_gone' : 'no_container', action: stopping ? 'stopped' : 'restart', driver, stopping,
      });
    }
  }

  /** Hooks read `run`'s container a last time, then it is removed and its port given back;
   * once per container. The slug pin is released apart, when no restart follows. */
  private cleanup(run: Incarnation): Promise<void> {
    run.cleaned ??= this.hooks.predestroy(run).then(() => this.launcher.remove(run));
    return run.cleaned;
  }

  /** The one transition path: checks the table, runs the entry actions, reports. */
  private enter(to: DynoStateName): void {
    const from = this.state;
    if (!(from === null ? FIRST_STATES : TRANSITIONS[from]).includes(to)) {
      this.log.error({ from, to }, 'refused illegal dyno state transition');
      return;
    }
    this.state = to;
    this.since = new Date(this.clock.now());
    if (to !== 'up') this.endpoint = undefined;
    const h = this.run.handle;
    const text = from !== null ? `State changed from ${from} to ${to}` : this.run.adopted ? `Re-adopted as ${to}` : 'Starting process';
    this.log.info({ from, to, source: `slipway[${this.spec.name}]`, ...(from === null && h ? { containerId: h.containerId, pid: h.pid } : {}) }, text);
    this.system(text);
    this.hooks.entered(to, from);
    // The exit's summary rides only in the `crashed` report (shared/protocol.ts ExitSummary).
    const summary = to === 'crashed' ? this.exitRecord.summary() : undefined;
    this.deps.onTransition(from, summary ? { ...this.status(), exitSummary: summary } : this.status());
  }
}
