// systemd's watchdog (WatchdogSec= in systemd/slipway-agent.service), fed only while the
// agent's own liveness holds. The rule (docs/architecture.md, "Under systemd"):
//   - a ping (WATCHDOG=1) every WatchdogSec/2;
//   - only if, since the previous check, the event loop's longest delay stayed under that
//     half period (perf_hooks' loop-delay histogram), and
//   - the supervision round ran lately (DynoManager's memory round, every memory.sampleMs: it
//     reads every dyno's cgroup, so a wedged round means R14/R15 and exits go unseen).
// The coordinator link is never part of it: a coordinator outage must not make systemd
// restart every agent of the fleet. A stalled loop sends nothing at all, since the timer
// itself cannot fire; systemd then restarts the agent (the dynos keep running: KillMode=process,
// and re-adoption takes them back).
//
// STATUS= is sent from here too, at most once a second, when its text changed.
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { DynoStatus } from '../../shared/protocol.js';
import type { Logger } from '../../shared/log.js';
import type { SystemdNotifier } from './systemd-notify.js';

export interface LivenessSources {
  /** performance.now() at the end of the last supervision round; undefined before the first. */
  supervisedAt(): number | undefined;
  /** The supervision round's period (memory.sampleMs). */
  supervisionPeriodMs: number;
}

export interface LivenessVerdict {
  ok: boolean;
  loopDelayMaxMs: number;
  supervisionAgeMs: number | undefined;
  reason?: string;
}

/** The bounds of one check; pure, so the rule is unit-tested with numbers. The supervision
 * round may lag three periods (one slow cgroup read) or one check period, whichever is longer;
 * before its first round, the agent's start counts as the last one. */
export function judgeLiveness(input: { loopDelayMaxMs: number; supervisionAgeMs: number; checkPeriodMs: number; supervisionPeriodMs: number }): LivenessVerdict {
  const base = { loopDelayMaxMs: Math.round(input.loopDelayMaxMs), supervisionAgeMs: Math.round(input.supervisionAgeMs) };
  if (input.loopDelayMaxMs > input.checkPeriodMs) {
    return { ...base, ok: false, reason: `event loop delayed ${base.loopDelayMaxMs} ms (bound ${input.checkPeriodMs} ms)` };
  }
  const supervisionBound = Math.max(3 * input.supervisionPeriodMs, input.checkPeriodMs);
  if (input.supervisionAgeMs > supervisionBound) {
    return { ...base, ok: false, reason: `no supervision round for ${base.supervisionAgeMs} ms (bound ${supervisionBound} ms)` };
  }
  return { ...base, ok: true };
}

/** `dynos: 3 up, 1 starting; link: ready` (the order of DynoStateName; zero counts left out). */
export function serviceStatusText(dynos: readonly Pick<DynoStatus, 'state'>[], linkState: string, accepting: boolean): string {
  const counts = new Map<string, number>();
  for (const d of dynos) counts.set(d.state, (counts.get(d.state) ?? 0) + 1);
  const parts = ['up', 'starting', 'crashed', 'stopping', 'down'].filter((s) => counts.has(s)).map((s) => `${counts.get(s)} ${s}`);
  return `dynos: ${parts.length > 0 ? parts.join(', ') : 'none'}; link: ${linkState}${accepting ? '' : '; not accepting dynos'}`;
}

export interface WatchdogOptions {
  notifier: Pick<SystemdNotifier, 'notify'>;
  /** WATCHDOG_USEC from systemd; without it only STATUS= is sent. */
  watchdogUsec?: number;
  liveness: LivenessSources;
  /** The current STATUS= text; read every second. */
  status: () => string;
  log: Logger;
}

/** How often the status text is looked at; systemd gets it only when it changed. */
const STATUS_EVERY_MS = 1000;

export class Watchdog {
  private readonly histogram: ReturnType<typeof monitorEventLoopDelay>;
  private readonly startedAt = performance.now();
  private readonly timers: NodeJS.Timeout[] = [];
  private lastStatus = '';
  private unhealthy = false;
  /** Pings sent and withheld, for /v1/status and tests. */
  pings = 0;
  withheld = 0;
  last: LivenessVerdict | undefined;

  constructor(private readonly o: WatchdogOptions) {
    // 20 ms resolution: the bound is seconds; a finer one costs timer wake-ups for nothing.
    this.histogram = monitorEventLoopDelay({ resolution: 20 });
  }

  get checkPeriodMs(): number | undefined {
    return this.o.watchdogUsec ? Math.max(1, Math.floor(this.o.watchdogUsec / 2000)) : undefined;
  }

  start(): void {
    this.histogram.enable();
    const period = this.checkPeriodMs;
    if (period) this.timers.push(setInterval(() => this.check(), period));
    this.timers.push(setInterval(() => this.sendStatus(), STATUS_EVERY_MS));
    for (const t of this.timers) t.unref();
    this.sendStatus();
  }

  stop(): void {
    for (const t of this.timers.splice(0)) clearInterval(t);
    this.histogram.disable();
  }

  /** One liveness check; pings systemd when it holds. Public for tests. */
  check(): LivenessVerdict {
    const period = this.checkPeriodMs ?? 0;
    const now = performance.now();
    const verdict = judgeLiveness({
      loopDelayMaxMs: this.histogram.count > 0 ? this.histogram.max / 1e6 : 0,
      supervisionAgeMs: now - (this.o.liveness.supervisedAt() ?? this.startedAt),
      checkPeriodMs: period,
      supervisionPeriodMs: this.o.liveness.supervisionPeriodMs,
    });
    this.histogram.reset();
    this.last = verdict;
    if (verdict.ok) {
      if (this.unhealthy) this.o.log.info({ ...verdict }, 'agent liveness holds again: watchdog pings resumed');
      this.unhealthy = false;
      this.pings += 1;
      this.o.notifier.notify({ WATCHDOG: '1' });
    } else {
      // Withheld: if it lasts past WatchdogSec, systemd restarts the agent (that is the point).
      if (!this.unhealthy) this.o.log.error({ ...verdict }, 'agent liveness failed: watchdog ping withheld');
      this.unhealthy = true;
      this.withheld += 1;
    }
    return verdict;
  }

  private sendStatus(): void {
    const text = this.o.status();
    if (text === this.lastStatus) return;
    this.lastStatus = text;
    this.o.notifier.notify({ STATUS: text });
  }
}
