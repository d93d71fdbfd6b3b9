// Heroku's daily cycling (Nomad's max-run-duration hook): a dyno that has been up for periodMs
// plus a random part of jitterMs (24 h + 0-216 min by default, agent/config/schema.ts) is
// cycled: `starting` is reported (routers drop its route), its container is stopped Heroku
// style (SIGTERM, graceMs, SIGKILL) and removed, and a fresh one starts from the slug
// (Dyno.cycle). The timer is armed on every entry into `up`, the first report of a re-adopted
// dyno included, and disarmed on every other state. One-off dynos are never cycled. Without
// cycling configured (`cycling.enabled: false`) Dyno has no such hook.
import { isOneOffDyno } from './one-off.js';
import type { DynoControl, DynoHook } from './hooks.js';
import type { DynoStateName } from '../../shared/protocol.js';

export interface CyclingSettings {
  periodMs: number;
  jitterMs: number;
  graceMs: number;
  /** In [0, 1); default Math.random. */
  random?: () => number;
}

export class CyclingHook implements DynoHook {
  readonly name = 'cycling';
  private timer: unknown;

  constructor(private readonly dyno: DynoControl, private readonly settings: CyclingSettings) {}

  entered(to: DynoStateName): void {
    if (to === 'up') this.arm();
    else this.disarm();
  }

  private arm(): void {
    if (this.timer !== undefined || isOneOffDyno(this.dyno.spec)) return;
    const { periodMs, jitterMs, graceMs } = this.settings;
    const delayMs = Math.round(periodMs + (this.settings.random ?? Math.random)() * jitterMs);
    this.timer = this.dyno.clock.setTimeout(() => {
      this.timer = undefined;
      void this.dyno.cycle(graceMs).catch((err: unknown) => this.dyno.log.error({ err }, 'cycling the dyno failed'));
    }, delayMs);
  }

  private disarm(): void {
    if (this.timer !== undefined) this.dyno.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }
}
