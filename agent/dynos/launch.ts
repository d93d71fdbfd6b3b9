// Launching one container of a dyno, step by step, each step bounded by the component it calls
// (the slug store's download, the port allocator's bind check, the driver's start timeouts):
//
//   1. the slug, pinned for the dyno (it stays pinned across restarts: released by the owner
//      only when no restart follows)
//   2. a web dyno's $PORT
//   3. the hooks' prestart (record-keeping writes the record: from here on an agent that dies
//      finds the dyno)
//   4. the container, from the one ContainerSpec builder (container-spec.ts)
//
// Between steps the launch checks that the dyno is still wanted: a stop during a launch lets a
// slug download in flight finish (other dynos may share it) and then starts nothing, and a port
// reserved meanwhile goes back. A re-adoption (adopt) takes over a container instead, and
// halt/remove end one. An Incarnation is one container of the dyno (hooks.ts ContainerRun);
// its owner makes a new one for every start, crash restart and cycle.
import type { DynoSpec, DynoStateName, Endpoint, ExitStatus } from '../../shared/protocol.js';
import type { Logger } from '../../shared/log.js';
import type { DynoHandle, RecoveredDyno } from '../runtime/driver.js';
import { dynoContainerSpec, type DynoHostSettings } from './container-spec.js';
import type { DynoDeps } from './dyno-deps.js';
import type { DynoRecord } from './dyno-records.js';
import { isWebDyno } from './entrypoint.js';
import type { ContainerRun } from './hooks.js';
import { probeOnce } from './readiness.js';

export class Incarnation implements ContainerRun {
  handle: DynoHandle | undefined;
  port: number | undefined;
  /** The driver's start while it is in flight (a stop waits for it, then stops the container). */
  containerStart: Promise<DynoHandle> | undefined;
  /** Its cleanup, which runs once (Dyno.cleanup). */
  cleaned: Promise<void> | undefined;
  portReleased = false;
  readonly abort = new AbortController();

  constructor(readonly n: number, readonly adopted: boolean) {}

  get signal(): AbortSignal {
    return this.abort.signal;
  }
}

export class Launcher {
  private slugPinned = false;

  constructor(
    private readonly spec: DynoSpec,
    private readonly deps: Pick<DynoDeps, 'driver' | 'slugs' | 'stacks' | 'ports'>,
    private readonly host: DynoHostSettings & { address: string },
    private readonly log: Logger,
  ) {}

  async pinSlug(): Promise<{ path: string }> {
    const slug = await this.deps.slugs.ensure(this.spec.slug, { pin: this.spec.id });
    this.slugPinned = true;
    return slug;
  }

  releaseSlug(): void {
    if (this.slugPinned) this.deps.slugs.unpin(this.spec.slug.sha256, this.spec.id);
    this.slugPinned = false;
  }

  /** Gives `run`'s port back to the allocator, once. */
  releasePort(run: Incarnation): void {
    if (run.port === undefined || run.portReleased) return;
    run.portReleased = true;
    this.deps.ports.release(run.port);
  }

  /** Starts `run`'s container: true once it runs, false when the dyno stopped being wanted
   * first (then nothing of this launch is left). A failed step throws. */
  async launch(run: Incarnation, wanted: () => boolean, prestart: () => Promise<void>): Promise<boolean> {
    const slug = await this.pinSlug();
    if (!wanted()) {
      this.releaseSlug();
      return false;
    }
    const stack = this.deps.stacks.resolve(this.spec.stack);
    if (isWebDyno(this.spec)) run.port = await this.deps.ports.reserve();
    if (wanted()) await prestart();
    if (!wanted()) {
      this.releasePort(run);
      return false;
    }
    run.containerStart = this.deps.driver.start(dynoContainerSpec({ spec: this.spec, stack, slugDir: slug.path, port: run.port, host: this.host }));
    run.handle = await run.containerStart;
    this.log.info({ containerId: run.handle.containerId, pid: run.handle.pid, port: run.port, incarnation: run.n }, 'dyno container started');
    return true;
  }

  /**
   * Takes over, as `run`, the container an earlier agent process started (`found`: undefined
   * when it is gone), with the port its record holds and the slug pinned again, and says what
   * the dyno's first report is: `crashed` when the container is gone; `up` for a worker, for a
   * web dyno whose port accepts (with its endpoint), and for a container that exited while no
   * agent ran (its exit, seen next, reports the crash); else `starting` (R10 from now).
   */
  async adopt(run: Incarnation, found: RecoveredDyno | undefined, record: DynoRecord): Promise<{ first: DynoStateName; endpoint?: Endpoint }> {
    run.port = record.port;
    if (run.port !== undefined) this.deps.ports.claim(run.port);
    await this.pinSlug().catch((err: unknown) => this.log.warn({ err }, 're-adopted dyno: its slug could not be pinned'));
    run.handle = found?.handle;
    if (!found) return { first: 'crashed' };
    // Only a web dyno's record holds a port.
    if (run.port === undefined || !found.running) return { first: 'up' };
    const { address } = this.host;
    return await probeOnce(address, run.port) ? { first: 'up', endpoint: { host: address, port: run.port } } : { first: 'starting' };
  }

  /** Heroku's stop of `run`'s container (the driver's: SIGTERM to all, `graceMs`, SIGKILL),
   * after a start in flight finished; undefined when there was none or the stop failed (the
   * container is destroyed all the same by remove()). */
  async halt(run: Incarnation, graceMs: number): Promise<{ forced: boolean; exit: ExitStatus } | undefined> {
    if (run.handle === undefined && run.containerStart) await run.containerStart.catch(() => undefined);
    if (!run.handle) return undefined;
    try {
      const { forced, exit } = await this.deps.driver.stop(run.handle, graceMs);
      return { forced, exit: { code: exit.code, signal: exit.signal } };
    } catch (err) {
      this.log.error({ err }, 'stopping dyno failed; destroying it');
      return undefined;
    }
  }

  /** Destroys `run`'s container (mounts, dir) and gives back its port. */
  async remove(run: Incarnation): Promise<void> {
    if (run.handle) await this.deps.driver.destroy(run.handle).catch((err: unknown) => this.log.error({ err }, 'destroying dyno container failed'));
    this.releasePort(run);
  }
}
