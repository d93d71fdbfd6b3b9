// Convergence to the coordinator's desired set. The welcome that answers every hello may
// list the dynos the coordinator wants on this host (shared/protocol.ts `desired`):
// - a listed dyno with a spec that this host does not run is started now (its start_dyno
//   was lost, or the host came back empty); a refusal is reported as a `down` event with
//   the refusal's code, so the coordinator places it elsewhere;
// - a dyno this host runs that is not listed is "unknown" to the coordinator. It is stopped
//   only after `graceMs`, and only if nothing claimed it meanwhile (a start_dyno for it, or
//   a later welcome that lists it). The grace covers a coordinator that is still rebuilding
//   its view, or a failover between coordinators; a coordinator that wants a dyno gone now
//   sends stop_dyno.
// A welcome without `desired` changes nothing. Losing the link cancels pending stops:
// dynos keep running while disconnected, and the next welcome decides again.
import type { DesiredDyno, DynoSpec, DynoStatus } from '../../shared/protocol.js';
import { asSlipwayError, type SlipwayError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import type { DecisionSink } from '../diagnostics/decisions.js';

/** Two minutes: longer than a coordinator takes to restart and collect its agents' hellos
 * (about 20 s for 2,000 agents, scripts/bench/fleet.sh), short enough that an orphaned dyno
 * does not hold memory for long. Configurable as `link.unknownDynoGraceMs`. */
export const UNKNOWN_DYNO_GRACE_MS = 120_000;

export interface ConvergenceTarget {
  list(): DynoStatus[];
  get(id: string): DynoStatus | undefined;
  start(spec: DynoSpec): DynoStatus;
  stop(id: string): { status: DynoStatus; done: Promise<void> };
  /** Where a stop of an unwanted dyno is recorded (the manager carries the host's log). */
  readonly decisions?: DecisionSink | undefined;
}

export interface ConvergenceOptions {
  manager: ConvergenceTarget;
  log: Logger;
  graceMs?: number;
  /** A desired dyno this host refused to start: report it (as a `down` event). */
  refused: (spec: DynoSpec, err: SlipwayError) => void;
}

export interface ConvergenceStep {
  started: string[];
  refused: string[];
  /** Running here, not desired: stopped after the grace unless claimed. */
  unknown: string[];
}

export class Convergence {
  private readonly unknown = new Set<string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: ConvergenceOptions) {}

  /** Applies a welcome's desired set; undefined (no desired set) changes nothing. */
  converge(desired: readonly DesiredDyno[] | undefined): ConvergenceStep {
    this.cancel();
    const step: ConvergenceStep = { started: [], refused: [], unknown: [] };
    if (!desired) return step;
    const wanted = new Set(desired.map((d) => d.id));
    for (const d of desired) {
      if (!d.spec || this.o.manager.get(d.id)) continue;
      try {
        this.o.manager.start(d.spec);
        step.started.push(d.id);
      } catch (err) {
        step.refused.push(d.id);
        this.o.refused(d.spec, asSlipwayError(err));
      }
    }
    for (const s of this.o.manager.list()) {
      if (wanted.has(s.id) || s.state === 'stopping' || s.state === 'down') continue;
      this.unknown.add(s.id);
      step.unknown.push(s.id);
    }
    const { graceMs } = this;
    if (step.started.length + step.refused.length + step.unknown.length > 0) {
      this.o.log.info({ ...step, graceMs }, 'converging to the coordinator\'s desired set');
    }
    if (this.unknown.size > 0) {
      this.timer = setTimeout(() => this.stopUnknown(), graceMs);
      this.timer.unref();
    }
    return step;
  }

  /** A start_dyno for this id arrived: the coordinator wants it after all. */
  claim(id: string): void {
    this.unknown.delete(id);
  }

  /** The link dropped: nothing is stopped on the word of a coordinator we cannot hear. */
  cancel(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.unknown.clear();
  }

  private get graceMs(): number {
    return this.o.graceMs ?? UNKNOWN_DYNO_GRACE_MS;
  }

  /** Ids waiting for their grace to end. */
  pending(): string[] {
    return [...this.unknown];
  }

  private stopUnknown(): void {
    this.timer = undefined;
    for (const id of this.unknown) {
      const status = this.o.manager.get(id);
      if (!status || status.state === 'stopping' || status.state === 'down') continue;
      this.o.log.warn({ dynoId: id, app: status.app, dyno: status.name }, 'stopping a dyno the coordinator does not want (unlisted for the whole grace)');
      this.o.manager.decisions?.about(status, 'convergence_stop', `stopped: the coordinator's desired set has not listed it for ${this.graceMs / 1000} s`, {
        graceMs: this.graceMs, state: status.state,
      });
      try {
        this.o.manager.stop(id).done.catch((err: unknown) => this.o.log.error({ err, dynoId: id }, 'stopping an unwanted dyno failed'));
      } catch (err) {
        this.o.log.warn({ err, dynoId: id }, 'could not stop an unwanted dyno');
      }
    }
    this.unknown.clear();
  }
}

/** The status reported for a desired dyno this host refused to start: `down`, with why. */
export function refusedStatus(spec: DynoSpec, err: SlipwayError, now = new Date()): DynoStatus {
  const status: DynoStatus = {
    id: spec.id, app: spec.app, type: spec.type, name: spec.name, state: 'down', memoryMb: 0, since: now.toISOString(), reason: err.toWire(),
  };
  if (spec.release !== undefined) status.release = spec.release;
  return status;
}
