// The concerns of a dyno's life beside its state, one hook each and one file each (Nomad's task
// runner hooks, client/allocrunner/taskrunner/*_hook.go, whose max-run-duration hook is our
// daily cycling). The dyno's owner (dyno.ts) keeps the state, the desired state and the
// transition table; at each point of the dyno's life it calls that method of every hook that
// has it, in the order of its hook list (dyno-hooks.ts). A hook changes the dyno only through
// DynoControl, so that the owner stays the only writer of the dyno's state.
//
//   prestart(run)           before each container is created; awaited in order, a throw fails
//                           the launch (record-keeping: the record is written here)
//   poststart(run)          the container runs: started now, or taken over after an agent
//                           restart (run.adopted); awaited in order (logs attach, R10 arms)
//   entered(to, from)       every state change, the first report (from null) included, after the
//                           owner's own entry actions and before the listeners hear of it
//   predestroy(run)         the container is about to be removed: the last chance to read it
//   stopping(run, graceMs)  a stop begins: `stopping` is reported, no signal sent yet (awaited)
//   retired()               the dyno will not run again: down, or crashed for good (awaited)
//
// A failed prestart or poststart fails the launch (the dyno crashes, as for any failed start);
// a failure at any other point is logged and the other hooks still run: a hook cannot stop a
// transition from being reported. A new concern is a new hook file and one line in the list of
// dyno-hooks.ts, not new fields in the owner. What the container itself needs (the slug, the
// port, the network namespace) is not a hook's: the launcher (launch.ts) takes it before the
// container is created and gives it back after the container is removed, a point no hook has.
import type { DynoSpec, DynoStateName, DynoStatus, Endpoint, WireError } from '../../shared/protocol.js';
import type { Logger } from '../../shared/log.js';
import type { DynoHandle } from '../runtime/driver.js';
import type { Clock } from '../lib/clock.js';
import type { DynoNetwork } from '../network/host-network.js';

/** One container of the dyno, as hooks see it: every start, crash restart and cycle makes a new
 * one; a re-adoption takes over the one an earlier agent process started. */
export interface ContainerRun {
  /** 1 for the dyno's first container in this agent process, then counting up. */
  readonly n: number;
  /** Taken over after an agent restart, not started by this process. */
  readonly adopted: boolean;
  /** Set once the runtime has started (or recovered) the container. */
  readonly handle: DynoHandle | undefined;
  /** A web dyno's $PORT, held from before the container starts until it is removed. */
  readonly port: number | undefined;
  /** Its own network namespace and address, held likewise (absent without a host network). */
  readonly network: DynoNetwork | undefined;
  /** Aborted when the container's life ends for the dyno: its exit, a stop, a cycle, a failed
   * launch. A hook's waits end with it. */
  readonly signal: AbortSignal;
}

/** What a hook may read of its dyno and ask of it. */
export interface DynoControl {
  readonly spec: DynoSpec;
  readonly log: Logger;
  readonly clock: Clock;
  /** The reported state ('starting' before the first report). */
  readonly current: DynoStateName;
  /** 'down' once a stop was asked for: nothing may start again. */
  readonly desired: 'up' | 'down';
  status(): DynoStatus;
  /** `run` is the dyno's current container, started, and the dyno is wanted up (no stop asked). */
  live(run: ContainerRun): boolean;
  /** A `slipway[web.1]` line in the dyno's log stream. */
  system(text: string): void;
  /** starting -> up with `endpoint` (the readiness cue of a web dyno); ignored unless `run` is live. */
  ready(run: ContainerRun, endpoint: Endpoint): void;
  /** SIGKILLs `run`'s container for `reason` (R10, R15), which its exit is then reported
   * crashed with; a second kill before that exit is ignored. */
  kill(run: ContainerRun, reason: WireError): Promise<void>;
  /** Daily cycling: up -> starting, the container stopped with `graceMs` of grace, a new one started. */
  cycle(graceMs: number): Promise<void>;
  /** Crash restart: crashed -> starting, in a new container from the slug. */
  restart(): void;
  /** A crashed dyno that will not start again: it lets go of its slug and its record, and
   * stays listed as crashed until it is stopped. */
  retire(): void;
}

export interface DynoHook {
  /** For logs: which hook failed. */
  readonly name: string;
  prestart?(run: ContainerRun): Promise<void>;
  poststart?(run: ContainerRun): Promise<void> | void;
  entered?(to: DynoStateName, from: DynoStateName | null): void;
  predestroy?(run: ContainerRun): Promise<void> | void;
  stopping?(run: ContainerRun, graceMs: number): Promise<void>;
  retired?(): Promise<void>;
}

/** One dyno's hooks, called in list order at each point. */
export class HookList {
  constructor(private readonly hooks: readonly DynoHook[], private readonly log: Logger) {}

  async prestart(run: ContainerRun): Promise<void> {
    for (const h of this.hooks) await h.prestart?.(run);
  }

  async poststart(run: ContainerRun): Promise<void> {
    for (const h of this.hooks) await h.poststart?.(run);
  }

  entered(to: DynoStateName, from: DynoStateName | null): void {
    for (const h of this.hooks) {
      try {
        h.entered?.(to, from);
      } catch (err) {
        this.failed(h, 'entered', err);
      }
    }
  }

  predestroy(run: ContainerRun): Promise<void> {
    return this.each('predestroy', (h) => h.predestroy?.(run));
  }

  stopping(run: ContainerRun, graceMs: number): Promise<void> {
    return this.each('stopping', (h) => h.stopping?.(run, graceMs));
  }

  retired(): Promise<void> {
    return this.each('retired', (h) => h.retired?.());
  }

  private async each(point: keyof DynoHook, call: (h: DynoHook) => Promise<void> | void | undefined): Promise<void> {
    for (const h of this.hooks) await Promise.resolve().then(() => call(h)).catch((err: unknown) => this.failed(h, point, err));
  }

  private failed(h: DynoHook, point: string, err: unknown): void {
    this.log.error({ err, hook: h.name, point }, 'a dyno hook failed');
  }
}
