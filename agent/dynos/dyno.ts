// One dyno's owner. This object is the ONLY writer of the dyno's state: every transition
// goes through `transition()`, which checks the table below and reports the change (to the
// coordinator's outbox and as a `slipway[web.1]` system log line). Everything else reads
// `status()`.
//
//   starting -> up | crashed | stopping
//   up       -> crashed | stopping | starting (daily cycling)
//   crashed  -> starting | stopping | down
//   stopping -> down
//   down     -> (terminal)
//
// Crash restarts (Heroku's): a crashed dyno starts again, in a fresh container from the slug,
// after the delay its RestartPolicy gives (the first at once, then backing off to 20 min).
// It stays `crashed` while it waits, with the exit status and reason of the crash. Not
// restarted: one-off dynos (process type `run`, as Heroku's `run.N`), and launches that failed
// with an error that cannot succeed unchanged (a non-retryable code such as
// SLUG_CHECKSUM_MISMATCH); those stay crashed until the coordinator stops them. The slug stays
// pinned across restarts, so the cache cannot evict it between two attempts.
import { join } from 'node:path';
import type { DynoSpec, DynoStateName, DynoStatus, Endpoint, ExitStatus, WireError } from '../../shared/protocol.js';
import { SlipwayError, asSlipwayError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import type { DynoExit, DynoHandle, LogSource, RecoveredDyno, RuntimeDriver } from '../runtime/driver.js';
import type { StackStore } from '../stacks/stacks.js';
import type { PortAllocator } from './ports.js';
import { dynoArgs, dynoEnv, isWebDyno } from './entrypoint.js';
import { waitForPort } from './readiness.js';
import { DEFAULT_RESTART_POLICY, RestartPolicy, type RestartPolicyOptions } from './restart-policy.js';
import { DEFAULT_MEMORY_SETTINGS, MemoryPolicy } from './memory-policy.js';
import type { DynoRecord, DynoRecords } from './dyno-records.js';
import type { LogShipper } from './log-shipper.js';

/** The last memory sample of a dyno, for the capacity report and diagnostics. */
export interface DynoMemory {
  quotaBytes: number;
  limitBytes: number;
  workingSetBytes: number;
  swapBytes: number;
  r14Count: number;
  sampledAt: string;
}

/** Heroku's one-off dynos (`heroku run`, named run.N) are never restarted. */
export function isOneOffDyno(spec: Pick<DynoSpec, 'type'>): boolean {
  return spec.type === 'run';
}

export const TRANSITIONS: Readonly<Record<DynoStateName, readonly DynoStateName[]>> = {
  starting: ['up', 'crashed', 'stopping'],
  up: ['crashed', 'stopping', 'starting'],
  crashed: ['starting', 'stopping', 'down'],
  stopping: ['down'],
  down: [],
};

export interface SlugProvider {
  /** Pins the slug for `pin` (the dyno id) until unpin(): it cannot be evicted meanwhile. */
  ensure(ref: { url: string; sha256: string }, options: { pin: string }): Promise<{ path: string }>;
  unpin(sha256: string, owner: string): void;
}

export interface DynoSettings {
  dynosDir: string;
  /** Address the dyno's endpoint is reachable at (reported to the coordinator, probed for readiness). */
  address: string;
  dynoUser: { uid: number; gid: number };
  bootTimeoutMs: number;
  nofile: number;
}

export interface DynoDeps {
  driver: RuntimeDriver;
  slugs: SlugProvider;
  stacks: StackStore;
  ports: PortAllocator;
  settings: DynoSettings;
  log: Logger;
  /** Called synchronously on every transition, in order. */
  onTransition: (from: DynoStateName | null, status: DynoStatus) => void;
  /** Crash restart timing (default DEFAULT_RESTART_POLICY); tests shorten it. */
  restartPolicy?: RestartPolicyOptions;
  /** R14/R15 (memory-policy.ts); default DEFAULT_MEMORY_SETTINGS. */
  memory?: { r15Multiple: number; r14IntervalMs: number };
  /** Heroku's daily cycling: a dyno that has been up `periodMs` plus a random part of
   * `jitterMs` is stopped (SIGTERM, `graceMs`) and started afresh. Absent: never cycled. */
  cycling?: { periodMs: number; jitterMs: number; graceMs: number };
  /** Where the dyno's record is kept for re-adoption after an agent restart (dyno-records.ts);
   * without it nothing is persisted (unit tests). */
  records?: DynoRecords;
  /** Ships the dyno's output and the agent's lines about it (log-shipper.ts). */
  logs?: Pick<LogShipper, 'attach' | 'system' | 'flush' | 'detach'>;
}

export class Dyno {
  private state: DynoStateName = 'starting';
  private since = new Date();
  private endpoint: Endpoint | undefined;
  private exit: ExitStatus | undefined;
  private reason: WireError | undefined;
  private handle: DynoHandle | undefined;
  private port: number | undefined;
  private stopRequested = false;
  private slugPinned = false;
  private abort = new AbortController();
  private containerStart: Promise<DynoHandle> | undefined;
  private cleaned: Promise<void> | undefined;
  /** Counts the dyno's starts; an exit of an earlier container is ignored. */
  private incarnation = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private cycleTimer: NodeJS.Timeout | undefined;
  private readonly restarts: RestartPolicy;
  private readonly memoryPolicy: MemoryPolicy;
  private lastMemory: DynoMemory | undefined;
  private readonly log: Logger;

  constructor(readonly spec: DynoSpec, private readonly deps: DynoDeps) {
    this.log = deps.log.child({ dynoId: spec.id, dyno: spec.name, app: spec.app });
    this.restarts = new RestartPolicy(deps.restartPolicy ?? DEFAULT_RESTART_POLICY);
    this.memoryPolicy = new MemoryPolicy({ quotaBytes: this.memoryBytes, ...DEFAULT_MEMORY_SETTINGS, ...deps.memory });
  }

  /** The last memory sample, if the dyno has been sampled while running. */
  memory(): DynoMemory | undefined {
    return this.lastMemory;
  }

  /**
   * Reads the dyno's memory from its cgroup and applies Heroku's rules: R14 is a warning
   * (logged as a `slipway[web.1]` line, rate-limited), R15 kills the dyno, which is then
   * reported crashed with DYNO_MEMORY_EXCEEDED and restarted. The manager calls this every
   * few seconds for every dyno; a dyno that is not running is skipped.
   */
  async sampleMemory(): Promise<void> {
    const handle = this.handle;
    if (!handle || this.stopRequested || (this.state !== 'up' && this.state !== 'starting')) return;
    const stats = await this.deps.driver.stats(handle).catch(() => undefined);
    if (!stats || handle !== this.handle) return;
    const sample = { workingSetBytes: stats.workingSetBytes, swapBytes: stats.swapBytes };
    const verdict = this.memoryPolicy.judge(sample);
    this.lastMemory = {
      quotaBytes: this.memoryBytes, limitBytes: this.memoryPolicy.limitBytes, ...sample,
      r14Count: this.memoryPolicy.r14Count, sampledAt: new Date().toISOString(),
    };
    const mb = (b: number) => Math.round(b / 1048576);
    const source = `slipway[${this.spec.name}]`;
    if (verdict.action === 'r14') {
      const text = `Error R14 (Memory quota exceeded): ${mb(verdict.totalBytes)} MB of ${mb(this.memoryBytes)} MB`;
      this.log.warn({ source, code: 'R14', totalMb: mb(verdict.totalBytes), quotaMb: mb(this.memoryBytes) }, text);
      this.deps.logs?.system(this.ident, text);
    } else if (verdict.action === 'r15' && !this.reason) {
      this.reason = new SlipwayError('DYNO_MEMORY_EXCEEDED', `Error R15 (Memory quota vastly exceeded): ${mb(verdict.totalBytes)} MB of ${mb(this.memoryBytes)} MB`).toWire();
      this.log.error({ source, code: 'R15', totalMb: mb(verdict.totalBytes), quotaMb: mb(this.memoryBytes) }, `${this.reason.message}; killing the dyno`);
      this.deps.logs?.system(this.ident, this.reason.message);
      await this.deps.driver.signal(handle, 'SIGKILL').catch((err: unknown) => this.log.error({ err }, 'R15 kill failed'));
    }
  }

  /** Crashed and waiting for its restart. */
  get restartPending(): boolean {
    return this.restartTimer !== undefined;
  }

  /** Crashes since the last healthy run or release (0 for a dyno that never crashed). */
  get crashCount(): number {
    return this.restarts.count;
  }

  get id(): string {
    return this.spec.id;
  }

  get current(): DynoStateName {
    return this.state;
  }

  get memoryBytes(): number {
    return this.spec.size.memoryMb * 1024 * 1024;
  }

  /** Where the dyno's output is, once its container exists. */
  logSource(): LogSource | undefined {
    return this.handle ? this.deps.driver.log(this.handle) : undefined;
  }

  status(): DynoStatus {
    const s: DynoStatus = {
      id: this.spec.id, app: this.spec.app, type: this.spec.type, name: this.spec.name, state: this.state,
      memoryMb: this.spec.size.memoryMb, since: this.since.toISOString(),
    };
    if (this.spec.release !== undefined) s.release = this.spec.release;
    if (this.endpoint) s.endpoint = this.endpoint;
    if (this.exit) s.exit = this.exit;
    if (this.reason) s.reason = this.reason;
    return s;
  }

  /** Reports `starting` and launches in the background; failures end in `crashed`. */
  begin(): void {
    this.deps.onTransition(null, this.status());
    this.run();
  }

  private run(): void {
    const incarnation = this.incarnation;
    void this.launch(incarnation).catch((err: unknown) => this.failLaunch(err, incarnation));
  }

  private async launch(incarnation: number): Promise<void> {
    const { settings } = this.deps;
    const slug = await this.deps.slugs.ensure(this.spec.slug, { pin: this.spec.id });
    this.slugPinned = true;
    if (this.stopRequested) return this.releaseSlug();
    const stack = this.deps.stacks.resolve(this.spec.stack);
    const web = isWebDyno(this.spec);
    if (web) {
      const port = await this.deps.ports.reserve();
      if (this.stopRequested) return this.deps.ports.release(port);
      this.port = port;
    }
    // Before the container exists: an agent that dies from here on finds the record and
    // re-adopts (or restarts) the dyno instead of leaving it to nobody.
    await this.persist();
    if (this.stopRequested) return;
    this.containerStart = this.deps.driver.start({
      dynoId: this.spec.id,
      dir: join(settings.dynosDir, this.spec.id),
      stackName: this.spec.stack,
      stackDir: stack.dir,
      slugDir: slug.path,
      args: dynoArgs(this.spec.command, stack.shell),
      env: dynoEnv(this.spec, this.port),
      cwd: '/app',
      user: settings.dynoUser,
      hostname: this.spec.id.slice(0, 63),
      limits: {
        // The kernel's hard limit is the R15 line (memory-policy.ts); the quota is watched.
        memoryBytes: this.memoryPolicy.limitBytes,
        cpuShares: this.spec.size.cpuShares,
        ...(this.spec.size.cpuQuotaPercent === undefined ? {} : { cpuQuotaPercent: this.spec.size.cpuQuotaPercent }),
        pidsLimit: this.spec.size.pidsLimit,
        nofile: settings.nofile,
      },
    });
    this.handle = await this.containerStart;
    await this.deps.logs?.attach(this.ident, this.deps.driver.log(this.handle));
    this.restarts.started(this.spec.release);
    this.log.info({ containerId: this.handle.containerId, pid: this.handle.pid, port: this.port, incarnation }, 'dyno container started');
    void this.deps.driver.wait(this.handle).then((exit) => this.onExit(exit, incarnation));
    if (this.stopRequested) return;
    if (!web || this.port === undefined) {
      this.transition('up');
      return;
    }
    await this.awaitReadiness(this.handle);
  }

  /** A web dyno is up once $PORT accepts TCP; R10 after the boot timeout. */
  private async awaitReadiness(handle: DynoHandle): Promise<void> {
    const { settings } = this.deps;
    if (this.port === undefined) return;
    const ready = await waitForPort(settings.address, this.port, settings.bootTimeoutMs, this.abort.signal);
    if (handle !== this.handle) return;
    if (ready === 'ready' && this.state === 'starting') {
      this.endpoint = { host: settings.address, port: this.port };
      this.transition('up');
    } else if (ready === 'timeout' && this.state === 'starting') {
      // Heroku's R10: killed and reported crashed. onExit does the reporting.
      this.reason = new SlipwayError('DYNO_BOOT_TIMEOUT', `Error R10 (Boot timeout) -> Web process failed to bind to $PORT within ${Math.round(settings.bootTimeoutMs / 1000)} seconds of launch`).toWire();
      this.log.warn({ bootTimeoutMs: settings.bootTimeoutMs }, 'boot timeout (R10), killing dyno');
      await this.deps.driver.signal(handle, 'SIGKILL');
    }
  }

  private async failLaunch(err: unknown, incarnation: number): Promise<void> {
    const e = asSlipwayError(err);
    this.log.error({ err: e, code: e.code }, 'dyno failed to start');
    if (this.stopRequested || incarnation !== this.incarnation) return;
    this.reason = e.code === 'INTERNAL' ? new SlipwayError('DYNO_START_FAILED', e.message).toWire() : e.toWire();
    this.abort.abort();
    await this.cleanup();
    if (this.state === 'starting') {
      this.transition('crashed');
      this.afterCrash(this.reason.retryable);
    }
  }

  private async onExit(exit: DynoExit, incarnation: number): Promise<void> {
    if (incarnation !== this.incarnation) return;
    this.abort.abort();
    if (this.stopRequested) return; // stop() reports the exit
    this.exit = { code: exit.code, signal: exit.signal };
    if (exit.oomKilled) {
      this.reason = new SlipwayError('DYNO_OOM_KILLED', 'Error R15 (Memory quota vastly exceeded): the kernel OOM-killed a process of the dyno').toWire();
    } else if (!this.reason) {
      this.reason = new SlipwayError('DYNO_CRASHED', `Process exited with status ${exit.code ?? 'unknown'}`).toWire();
    }
    this.log.warn({ exit: this.exit, reason: this.reason.code }, 'dyno exited');
    if (this.reason.code !== 'DYNO_MEMORY_EXCEEDED') this.deps.logs?.system(this.ident, this.reason.message);
    await this.cleanup();
    if (this.state === 'starting' || this.state === 'up') {
      this.transition('crashed');
      this.afterCrash(true);
    }
  }

  /** Schedules the restart of a crashed dyno, or lets go of its slug when it stays crashed. */
  private afterCrash(restartable: boolean): void {
    if (this.stopRequested) return;
    if (!restartable || isOneOffDyno(this.spec)) {
      this.releaseSlug();
      // Stays crashed, listed until the coordinator stops it, but not across an agent
      // restart: nothing of it runs, and the next hello no longer names it.
      void this.forget();
      return;
    }
    const delayMs = this.restarts.crashed();
    this.log.info({ source: `slipway[${this.spec.name}]`, delayMs, crashes: this.restarts.count }, delayMs === 0 ? 'Restarting' : `Restarting in ${Math.ceil(delayMs / 1000)} s (crash ${this.restarts.count} in a row)`);
    this.restartTimer = setTimeout(() => this.restart(), delayMs);
    this.restartTimer.unref();
  }

  private scheduleCycle(): void {
    const c = this.deps.cycling;
    if (!c || this.cycleTimer || isOneOffDyno(this.spec)) return;
    const delayMs = Math.round(c.periodMs + Math.random() * c.jitterMs);
    this.cycleTimer = setTimeout(() => void this.cycle(c.graceMs), delayMs);
    this.cycleTimer.unref();
  }

  /** Daily cycling: `starting` is reported (routers drop the route), the container is stopped
   * Heroku style and removed, and a fresh one starts from the slug. Its exit is no crash. */
  private async cycle(graceMs: number): Promise<void> {
    this.cycleTimer = undefined;
    if (this.state !== 'up' || this.stopRequested) return;
    const old = this.handle;
    this.log.info({ source: `slipway[${this.spec.name}]` }, 'Cycling');
    this.deps.logs?.system(this.ident, 'Cycling');
    this.incarnation += 1;
    this.abort.abort();
    this.endpoint = undefined;
    this.transition('starting');
    if (old) await this.deps.driver.stop(old, graceMs).catch((err: unknown) => this.log.error({ err }, 'stopping the dyno for its cycle failed'));
    await this.cleanup();
    if (this.stopRequested || (this.state as DynoStateName) !== 'starting') return;
    this.fresh();
    this.run();
  }

  /** Clears what belonged to the previous container. */
  private fresh(): void {
    this.handle = undefined;
    this.port = undefined;
    this.containerStart = undefined;
    this.cleaned = undefined;
    this.abort = new AbortController();
    this.exit = undefined;
    this.reason = undefined;
    this.lastMemory = undefined;
  }

  /** A fresh container from the slug: Heroku's restarts start from a clean filesystem. */
  private restart(): void {
    this.restartTimer = undefined;
    if (this.stopRequested || this.state !== 'crashed') return;
    this.incarnation += 1;
    this.fresh();
    this.transition('starting');
    this.run();
  }

  /** Heroku's stop: report stopping (routers drop the route), SIGTERM all, grace, SIGKILL (R12), down. */
  async stop(graceMs: number): Promise<void> {
    if (this.state === 'down' || this.state === 'stopping') return;
    this.stopRequested = true;
    this.abort.abort();
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    if (this.state === 'crashed') {
      await this.cleanup();
      this.releaseSlug();
      await this.forget();
      this.transition('down');
      return;
    }
    this.endpoint = undefined;
    this.transition('stopping');
    // A re-adopted dyno finishes this stop should the agent die during the grace.
    await this.persist({ graceMs });
    // A container start in flight finishes first (bounded by the driver's own timeouts) and
    // is then stopped; a slug download in flight is left to finish (other dynos may share it)
    // and launch() returns without starting anything once it sees stopRequested.
    if (this.handle === undefined && this.containerStart) await this.containerStart.catch(() => undefined);
    if (this.handle) {
      try {
        const { forced, exit } = await this.deps.driver.stop(this.handle, graceMs);
        this.exit = { code: exit.code, signal: exit.signal };
        if (forced) {
          this.reason = new SlipwayError('DYNO_STOP_TIMEOUT', `Error R12 (Exit timeout) -> At least one process failed to exit within ${Math.round(graceMs / 1000)} seconds of SIGTERM`).toWire();
          this.deps.logs?.system(this.ident, this.reason.message);
        }
      } catch (err) {
        this.log.error({ err }, 'stopping dyno failed; destroying it');
      }
    }
    await this.cleanup();
    this.releaseSlug();
    await this.forget();
    this.transition('down');
  }

  /** Writes the dyno's record (dyno-records.ts). A failure (a full disk) is logged: the dyno
   * runs on, but would not be re-adopted after an agent restart. */
  private async persist(stopping?: { graceMs: number }): Promise<void> {
    if (!this.deps.records) return;
    const record: DynoRecord = { spec: this.spec, ...(this.port !== undefined ? { port: this.port } : {}), ...(stopping ? { stopping } : {}) };
    await this.deps.records.write(record).catch((err: unknown) => this.log.error({ err }, 'could not write the dyno record; it would not survive an agent restart'));
  }

  private get ident(): { dynoId: string; app: string; name: string } {
    return { dynoId: this.spec.id, app: this.spec.app, name: this.spec.name };
  }

  /** Removes the record of a dyno that is down or will not start again. */
  private async forget(): Promise<void> {
    await this.deps.records?.remove(this.spec.id).catch((err: unknown) => this.log.error({ err }, 'could not remove the dyno record'));
  }

  /**
   * Takes over a dyno that an earlier agent process started (the manager's recover()), from
   * its record and what its driver found (`found`: undefined when the container is gone).
   * Reported once, as a first transition: `up` for a running dyno (a web dyno whose port
   * accepts; else `starting`, with the boot timeout from now), then `crashed` for one that
   * exited while the agent was away or whose container is gone (and restarted by the policy).
   * A stop that was under way is finished.
   */
  async adopt(found: RecoveredDyno | undefined, record: DynoRecord): Promise<void> {
    if (record.port !== undefined) {
      this.deps.ports.claim(record.port);
      this.port = record.port;
    }
    try {
      await this.deps.slugs.ensure(this.spec.slug, { pin: this.spec.id });
      this.slugPinned = true;
    } catch (err) {
      this.log.warn({ err }, 're-adopted dyno: its slug could not be pinned');
    }
    const source = `slipway[${this.spec.name}]`;
    if (!found) {
      this.state = 'crashed';
      this.reason = new SlipwayError('DYNO_CRASHED', 'The dyno was gone when the agent restarted').toWire();
      this.log.warn({ source }, 'Dyno lost while the agent was down');
      await this.cleanup();
      this.deps.onTransition(null, this.status());
      if (record.stopping) return this.stop(record.stopping.graceMs);
      this.afterCrash(true);
      return;
    }
    this.handle = found.handle;
    await this.deps.logs?.attach(this.ident, this.deps.driver.log(found.handle), true);
    const incarnation = this.incarnation;
    const web = isWebDyno(this.spec) && this.port !== undefined;
    const ready = found.running && web ? await waitForPort(this.deps.settings.address, this.port!, 0, this.abort.signal) : 'timeout';
    this.state = !web || ready === 'ready' || !found.running ? 'up' : 'starting';
    if (this.state === 'up' && web && found.running) this.endpoint = { host: this.deps.settings.address, port: this.port! };
    this.log.info({ source, containerId: found.handle.containerId, pid: found.handle.pid, running: found.running, state: this.state }, `Re-adopted as ${this.state}`);
    this.deps.onTransition(null, this.status());
    this.restarts.started(this.spec.release);
    void this.deps.driver.wait(found.handle).then((exit) => this.onExit(exit, incarnation));
    if (record.stopping) {
      await this.stop(record.stopping.graceMs);
      return;
    }
    if (this.state === 'starting') void this.awaitReadiness(this.handle);
  }

  /** Where the dyno runs, for operators (diagnostics): its container and process. */
  runtimeInfo(): { containerId: string; pid?: number } | undefined {
    if (!this.handle) return undefined;
    return { containerId: this.handle.containerId, ...(this.handle.pid !== undefined ? { pid: this.handle.pid } : {}) };
  }

  /** Removes the container, mounts, dir and port of the current incarnation. Runs once per
   * incarnation; the slug pin is released apart (releaseSlug), when no restart follows. */
  private cleanup(): Promise<void> {
    this.cleaned ??= (async () => {
      // The container's last lines, before its log file goes with its directory.
      await this.deps.logs?.flush(this.spec.id).catch(() => undefined);
      if (this.handle) {
        await this.deps.driver.destroy(this.handle).catch((err: unknown) => this.log.error({ err }, 'destroying dyno container failed'));
      }
      if (this.port !== undefined) this.deps.ports.release(this.port);
    })();
    return this.cleaned;
  }

  private releaseSlug(): void {
    if (this.slugPinned) this.deps.slugs.unpin(this.spec.slug.sha256, this.spec.id);
    this.slugPinned = false;
  }

  private transition(to: DynoStateName): void {
    const from = this.state;
    if (!TRANSITIONS[from].includes(to)) {
      this.log.error({ from, to }, 'refused illegal dyno state transition');
      return;
    }
    this.state = to;
    this.since = new Date();
    if (to === 'up') this.scheduleCycle();
    else if (this.cycleTimer) {
      clearTimeout(this.cycleTimer);
      this.cycleTimer = undefined;
    }
    if (to !== 'up') this.endpoint = to === 'starting' ? this.endpoint : undefined;
    this.log.info({ from, to, source: `slipway[${this.spec.name}]` }, `State changed from ${from} to ${to}`);
    this.deps.logs?.system(this.ident, `State changed from ${from} to ${to}`);
    if (to === 'down') void this.deps.logs?.detach(this.spec.id);
    this.deps.onTransition(from, this.status());
  }
}
