// Heroku's crash restarts, on the dyno's clock: a dyno that enters `crashed` while it is wanted
// up starts again after the delay restart-policy.ts gives (the first at once, then backing off
// to 20 min; a healthy run or a new release resets the count), in a fresh container from the
// slug (Dyno.restart). It stays `crashed` while it waits. Not restarted, and retired instead
// (slug and record let go of; listed as crashed until the coordinator stops it): one-off dynos
// (one-off.ts), and a dyno whose crash reason is not retryable (a launch that failed with
// SLUG_CHECKSUM_MISMATCH cannot succeed unchanged). Any other state cancels a pending restart.
import type { DynoStateName } from '../../shared/protocol.js';
import { isOneOffDyno } from './one-off.js';
import { DEFAULT_RESTART_POLICY, RestartPolicy, type RestartPolicyOptions } from './restart-policy.js';
import type { DynoControl, DynoHook } from './hooks.js';
import type { DecisionSink } from '../diagnostics/decisions.js';

export class RestartsHook implements DynoHook {
  readonly name = 'restarts';
  private timer: unknown;
  private readonly policy: RestartPolicy;

  private readonly options: RestartPolicyOptions;

  constructor(private readonly dyno: DynoControl, options: Partial<RestartPolicyOptions> = {}, private readonly decisions?: DecisionSink) {
    this.options = { ...DEFAULT_RESTART_POLICY, now: () => dyno.clock.monotonic(), ...options };
    this.policy = new RestartPolicy(this.options);
  }

  /** Crashed and waiting for the restart. */
  get pending(): boolean {
    return this.timer !== undefined;
  }

  /** Crashes since the last healthy run or release. */
  get count(): number {
    return this.policy.count;
  }

  poststart(): void {
    this.policy.started(this.dyno.spec.release);
  }

  entered(to: DynoStateName): void {
    if (to !== 'crashed') return this.cancel();
    if (this.dyno.desired === 'down') return;
    const { reason } = this.dyno.status();
    const oneOff = isOneOffDyno(this.dyno.spec);
    if (oneOff || reason?.retryable === false) {
      this.decisions?.about(this.dyno.spec, 'restart_given_up', oneOff ? 'not restarted: a one-off dyno runs once' : `not restarted: ${reason?.code ?? 'its crash'} cannot succeed unchanged`, {
        oneOff, reason: reason?.code ?? null, retryable: reason?.retryable ?? null,
      });
      return this.dyno.retire();
    }
    const delayMs = this.policy.crashed();
    const crashes = this.policy.count;
    this.record(delayMs, reason?.code);
    this.dyno.log.info({ source: `slipway[${this.dyno.spec.name}]`, delayMs, crashes }, delayMs === 0 ? 'Restarting' : `Restarting in ${Math.ceil(delayMs / 1000)} s (crash ${crashes} in a row)`);
    this.timer = this.dyno.clock.setTimeout(() => {
      this.timer = undefined;
      this.dyno.restart();
    }, delayMs);
  }

  /** The `restart_scheduled` decision, with how its delay was chosen (restart-policy.ts). */
  private record(delayMs: number, reason: string | undefined): void {
    const c = this.policy.last;
    if (!this.decisions || !c) return;
    const { baseMs, capMs, jitter } = this.options;
    const how = c.attempt === 1 ? 'the first restart is immediate' : `backoff 2^${c.attempt - 2} x ${baseMs / 1000} s${c.capped ? `, capped at ${capMs / 1000} s` : ''}${jitter > 0 ? ' + jitter' : ''}`;
    this.decisions.about(this.dyno.spec, 'restart_scheduled', `restart ${c.attempt} in ${(delayMs / 1000).toFixed(1)} s (${how})`, {
      attempt: c.attempt, delayMs, backoffMs: c.backoffMs, baseMs, capMs, jitter, capped: c.capped, reset: c.reset, reason: reason ?? null,
    });
  }

  retired(): Promise<void> {
    this.cancel();
    return Promise.resolve();
  }

  private cancel(): void {
    if (this.timer !== undefined) this.dyno.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }
}
