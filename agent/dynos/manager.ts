// Holds the dynos of this host: admission, start and stop by id, and the list the hello and
// diagnostics read. Each Dyno owns its own state; the manager only creates, finds and forgets
// them, and forwards their transitions to whoever listens (the coordinator session).
import { performance } from 'node:perf_hooks';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { DynoSpec, DynoStateName, DynoStatus } from '../../shared/protocol.js';
import { SlipwayError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import type { LogSource, RuntimeDriver, RuntimeName } from '../runtime/driver.js';
import { readHandle } from '../runtime/handle-file.js';
import { DEFAULT_MEMORY_SETTINGS } from './memory-policy.js';
import { leftoverHandle, sweepDynos } from './sweep.js';
import { Dyno, type DynoDeps, type DynoMemory } from './dyno.js';
import { attachFeatures } from './attach-hook.js';

export type TransitionListener = (from: DynoStateName | null, status: DynoStatus) => void;

export interface DynoManagerOptions extends Omit<DynoDeps, 'onTransition' | 'log'> {
  log: Logger;
  /** Host memory the dynos may commit in total (allocatable = total - reserve). */
  allocatableBytes: () => number;
  stopGraceMs: number;
  /** How often every dyno's memory is read (R14/R15); default DEFAULT_MEMORY_SETTINGS.sampleMs. */
  memorySampleMs?: number;
  /** The host's disk and descriptors (agent/host/pressure.ts): a refusal of new dynos, or
   * undefined. Asked at each start after draining; running dynos are never touched by it. */
  pressure?: () => SlipwayError | undefined;
}

export class DynoManager {
  private readonly dynos = new Map<string, Dyno>();
  private readonly listeners: TransitionListener[] = [];
  private draining = false;

  constructor(private readonly opts: DynoManagerOptions) {}

  onTransition(listener: TransitionListener): void {
    this.listeners.push(listener);
  }

  get accepting(): boolean {
    return !this.draining;
  }

  /** The host's decision log (agent/diagnostics/decisions.ts), for what decides about dynos
   * outside the manager (convergence.ts). */
  get decisions(): DynoDeps['decisions'] {
    return this.opts.decisions;
  }

  /** Sum of memory quotas of the dynos that hold resources: everything not down, except a
   * crashed dyno that will not start again (one waiting for its restart keeps its share, so
   * that the host is not filled in the meantime). */
  committedBytes(): number {
    let sum = 0;
    for (const d of this.dynos.values()) if (d.current !== 'down' && (d.current !== 'crashed' || d.restartPending)) sum += d.memoryBytes;
    return sum;
  }

  /**
   * Re-adoption at agent start, before the coordinator link opens (so the hello names every
   * re-adopted dyno). For each dyno record: the driver named by the dyno's handle recovers its
   * container; a running one is taken over as it is (same container, same process), one that
   * exited while the agent was away is reported crashed once and restarted, one whose
   * container is gone (or never finished starting) is cleaned up, reported crashed and
   * restarted. Dyno dirs no record owns (and records that could not be read) are containers
   * nobody owns: stopped and removed. Never two containers for one dyno id: a restart reuses
   * the id only after the old container was destroyed.
   */
  async recover(dynosDir: string, driverFor: (name: RuntimeName) => Promise<RuntimeDriver | undefined>): Promise<{ adopted: number; lost: number; unowned: string[]; badRecords: number }> {
    const log = this.opts.log;
    const records = this.opts.records;
    const { records: found, bad } = records ? await records.readAll() : { records: [], bad: [] };
    const decisions = this.opts.decisions;
    for (const b of bad) {
      log.error({ dynoId: b.id, file: b.file, problem: b.problem }, 'dyno record unusable (moved aside); its container is treated as owned by nobody');
      decisions?.record({ kind: 'readoption_failed', dynoId: b.id, message: `not re-adopted: its record is unusable (${b.problem}); its container is removed`, data: { problem: b.problem, action: 'removed' } });
    }
    const owned = new Set(found.map((r) => r.spec.id));
    const unowned = await sweepDynos(dynosDir, driverFor, [this.opts.driver.name], log, (id) => owned.has(id));
    for (const id of unowned) {
      decisions?.record({ kind: 'readoption_failed', dynoId: id, message: 'not re-adopted: a container no dyno record owns; removed', data: { action: 'removed' } });
    }
    let adopted = 0;
    let lost = 0;
    for (const record of found) {
      const id = record.spec.id;
      const dir = join(dynosDir, id);
      const saved = await readHandle(dir);
      const driver = (saved ? await driverFor(saved.driver) : undefined) ?? this.opts.driver;
      const recovered = saved ? await driver.recover(dir).catch((err: unknown) => { log.error({ err, dynoId: id }, 'recovering a dyno failed'); return undefined; }) : undefined;
      if (!recovered && existsSync(dir)) {
        // Half-created, or its container is gone: remove what is left before a restart.
        const handle = saved ?? leftoverHandle(driver.name, id, dir);
        await driver.destroy(handle).catch((err: unknown) => log.error({ err, dynoId: id }, 'removing the remains of a lost dyno failed'));
      }
      const dyno = new Dyno(record.spec, { ...this.opts, driver, log, onTransition: (from, status) => this.forward(from, status) });
      this.dynos.set(id, dyno);
      await dyno.adopt(recovered, record, saved !== undefined);
      if (recovered) adopted += 1;
      else lost += 1;
    }
    log.info({ adopted, lost, unowned: unowned.length, badRecords: bad.length }, 're-adoption done');
    return { adopted, lost, unowned, badRecords: bad.length };
  }

  /** Where each dyno runs (diagnostics). */
  runtimeInfo(id: string): ReturnType<Dyno['runtimeInfo']> {
    return this.dynos.get(id)?.runtimeInfo();
  }

  /** Reads every running dyno's memory once (Dyno.sampleMemory: R14, R15). */
  async sampleMemory(): Promise<void> {
    await Promise.all([...this.dynos.values()].map((d) => d.sampleMemory().catch((err: unknown) => this.opts.log.warn({ err, dynoId: d.id }, 'memory sample failed'))));
  }

  /** Samples every `memorySampleMs` until the returned function is called. A round still
   * running when the next is due is not overlapped. */
  /** performance.now() at the end of the last supervision round (the memory round above): the
   * systemd watchdog's proof that supervision runs (agent/host/watchdog.ts). */
  supervisedAt: number | undefined;

  startMemorySampling(): () => void {
    let busy = false;
    const timer = setInterval(() => {
      if (busy) return;
      busy = true;
      void this.sampleMemory().finally(() => {
        busy = false;
        this.supervisedAt = performance.now();
      });
    }, this.opts.memorySampleMs ?? DEFAULT_MEMORY_SETTINGS.sampleMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  /** The last memory sample of each dyno that has one (capacity report, diagnostics). */
  memoryByDyno(): (DynoMemory & { id: string })[] {
    const out: (DynoMemory & { id: string })[] = [];
    for (const d of this.dynos.values()) {
      const m = d.memory();
      if (m) out.push({ id: d.id, ...m });
    }
    return out;
  }

  list(): DynoStatus[] {
    return [...this.dynos.values()].map((d) => d.status());
  }

  get(id: string): DynoStatus | undefined {
    return this.dynos.get(id)?.status();
  }

  logSource(id: string): LogSource | undefined {
    return this.dynos.get(id)?.logSource();
  }

  /**
   * Admits and launches a dyno; returns its `starting` status at once. The same spec twice
   * is answered with the existing dyno (a command retried under a new id stays harmless).
   */
  start(spec: DynoSpec): DynoStatus {
    const existing = this.dynos.get(spec.id);
    if (existing) {
      if (isDeepStrictEqual(existing.spec, spec)) return existing.status();
      throw new SlipwayError('DYNO_ALREADY_EXISTS', `dyno ${spec.id} already exists with a different spec`);
    }
    if (this.draining) throw this.refuse(spec, new SlipwayError('HOST_DRAINING', 'host is draining'), { resource: 'drain' });
    if (spec.attach) {
      if (!this.opts.attach) throw this.refuse(spec, new SlipwayError('RUNTIME_ATTACH_UNAVAILABLE', 'this agent cannot attach a one-off dyno (no rendezvous dialer)'), { resource: 'attach' });
      if (spec.attach.tty && !attachFeatures(this.opts.driver.name).includes('attach-tty')) {
        throw this.refuse(spec, new SlipwayError('RUNTIME_TTY_UNSUPPORTED', `the ${this.opts.driver.name} runtime cannot give a dyno a terminal`), { resource: 'attach' });
      }
    }
    const pressed = this.opts.pressure?.();
    if (pressed) throw this.refuse(spec, pressed, { resource: pressed.code === 'AGENT_FD_LIMIT' ? 'descriptors' : 'disk' });
    const need = spec.size.memoryMb * 1024 * 1024;
    const allocatable = this.opts.allocatableBytes();
    const committed = this.committedBytes();
    const free = allocatable - committed;
    if (need > free) {
      throw this.refuse(spec, new SlipwayError('INSUFFICIENT_CAPACITY', `dyno needs ${spec.size.memoryMb} MB, host has ${Math.max(0, Math.floor(free / 1048576))} MB free of its allocatable memory`), {
        resource: 'memory', requestedBytes: need, allocatableBytes: allocatable, committedBytes: committed, freeBytes: Math.max(0, free),
      });
    }
    const dyno = new Dyno(spec, { ...this.opts, log: this.opts.log, onTransition: (from, status) => this.forward(from, status) });
    this.dynos.set(spec.id, dyno);
    dyno.begin();
    return dyno.status();
  }

  /** The `admission_refused` decision for `spec`, with the numbers; returns the refusal. */
  private refuse(spec: DynoSpec, err: SlipwayError, data: Record<string, string | number>): SlipwayError {
    this.opts.decisions?.about(spec, 'admission_refused', `not started: ${err.message}`, { code: err.code, ...data });
    return err;
  }

  /** Begins a graceful stop; resolves with the status right after `stopping` was reported. */
  stop(id: string, graceMs = this.opts.stopGraceMs): { status: DynoStatus; done: Promise<void> } {
    const dyno = this.dynos.get(id);
    if (!dyno) throw new SlipwayError('DYNO_NOT_FOUND', `no dyno ${id} on this host`);
    const done = dyno.stop(graceMs);
    return { status: dyno.status(), done };
  }

  /**
   * Stops accepting new dynos (start() then fails with HOST_DRAINING). With `stopDynos`, every
   * dyno is also stopped Heroku style in the background; `stopping` counts them. Idempotent.
   */
  drain(options: { stopDynos?: boolean; graceMs?: number; cause?: string; deadline?: string } = {}): { accepting: boolean; stopping: number } {
    const already = this.draining;
    this.draining = true;
    let stopping = 0;
    if (options.stopDynos) {
      for (const d of [...this.dynos.values()]) {
        if (d.current === 'down' || d.current === 'stopping') continue;
        stopping += 1;
        d.stop(options.graceMs ?? this.opts.stopGraceMs).catch((err: unknown) => this.opts.log.error({ err, dynoId: d.id }, 'stop during drain failed'));
      }
    }
    this.opts.log.info({ stopDynos: options.stopDynos ?? false, stopping }, 'host draining: no new dynos');
    // A repeated drain that stops nothing more decides nothing new.
    if (!already || stopping > 0) {
      const cause = options.cause ?? 'coordinator';
      this.opts.decisions?.record({
        kind: 'drain', message: `host draining (${cause}): no new dynos${options.stopDynos ? `; stopping ${stopping} dynos` : ', running dynos keep running'}`,
        data: { cause, stopDynos: options.stopDynos ?? false, stopping, graceMs: options.graceMs ?? this.opts.stopGraceMs, deadline: options.deadline ?? null },
      });
    }
    return { accepting: false, stopping };
  }

  /** Accepts new dynos again. */
  undrain(): { accepting: boolean; stopping: number } {
    this.draining = false;
    this.opts.log.info('host accepting dynos again');
    return { accepting: true, stopping: 0 };
  }

  /** Stops every dyno (used by the demo teardown and tests); resolves when all are down. */
  async stopAll(graceMs = this.opts.stopGraceMs): Promise<void> {
    await Promise.all([...this.dynos.keys()].map((id) => this.stop(id, graceMs).done));
  }

  /** Hands a dyno's transition to every listener. A listener that throws is logged and the
   * others still hear of it: a listener's bug must not break the dyno's transition (its entry
   * actions, a crash restart) that called it synchronously. */
  private forward(from: DynoStateName | null, status: DynoStatus): void {
    // A dyno that is down is forgotten once reported; its id may be reused by a new start.
    if (status.state === 'down') this.dynos.delete(status.id);
    for (const l of this.listeners) {
      try {
        l(from, status);
      } catch (err) {
        this.opts.log.error({ err, dynoId: status.id, from, to: status.state }, 'a dyno transition listener failed');
      }
    }
  }
}
