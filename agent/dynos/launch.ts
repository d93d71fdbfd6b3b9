// Launching one container of a dyno, step by step, each step bounded by the component it calls
// (the slug store's download, the port allocator's bind check, the driver's start timeouts):
//
//   1. the slug, pinned for the dyno (it stays pinned across restarts: released by the owner
//      only when no restart follows), and meanwhile its own network namespace
//      (agent/network/host-network.ts: a ready one from the pool, or Docker's pause container)
//   2. a web dyno's $PORT
//   3. (the network, awaited)
//   4. the hooks' prestart (record-keeping writes the record, network included: from here on an
//      agent that dies finds the dyno and its network)
//   5. the container, from the one ContainerSpec builder (container-spec.ts), and at the same
//      time a web dyno's route (host port -> its address) in the DNAT map
//
// The port and the network are the container's: given back (route removed, namespace torn
// down) after the container is destroyed, by remove().
//
// Between steps the launch checks that the dyno is still wanted: a stop during a launch lets a
// slug download in flight finish (other dynos may share it) and then starts nothing, and a port
// reserved meanwhile goes back. A re-adoption (adopt) takes over a container instead, and
// halt/remove end one. An Incarnation is one container of the dyno (hooks.ts ContainerRun);
// its owner makes a new one for every start, crash restart and cycle.
import type { DynoSpec, DynoStateName, Endpoint, ExitStatus } from '../../shared/protocol.js';
import type { Logger } from '../../shared/log.js';
import type { DynoHandle, RecoveredDyno } from '../runtime/driver.js';
import { NETNS_DIR, type DynoNetwork } from '../network/host-network.js';
import { join } from 'node:path';
import { dynoContainerSpec, type DynoHostSettings } from './container-spec.js';
import type { DynoDeps } from './dyno-deps.js';
import type { DynoRecord } from './dyno-records.js';
import { isWebDyno } from './entrypoint.js';
import type { ContainerRun } from './hooks.js';
import type { RunEnd } from './exit-record-hook.js';
import { probeOnce } from './readiness.js';

export class Incarnation implements ContainerRun {
  handle: DynoHandle | undefined;
  port: number | undefined;
  network: DynoNetwork | undefined;
  /** The network is held (acquired or claimed) and not yet released. */
  networkHeld = false;
  routed = false;
  /** The driver's start while it is in flight (a stop waits for it, then stops the container). */
  containerStart: Promise<DynoHandle> | undefined;
  /** Its cleanup, which runs once (Dyno.cleanup). */
  cleaned: Promise<void> | undefined;
  portReleased = false;
  /** How its life ended, set by the owner before its cleanup (exit-record-hook.ts reads it). */
  ended: RunEnd | undefined;
  readonly abort = new AbortController();

  constructor(readonly n: number, readonly adopted: boolean) {}

  get signal(): AbortSignal {
    return this.abort.signal;
  }
}

export class Launcher {
  private slugPinned = false;
  /** A container whose destroy failed (EMFILE at the agent's descriptor limit, a busy mount):
   * it still holds the dyno's container id and dir, so it is destroyed again before the next
   * container of the dyno is created, and by the next remove(). Without this a crash restart
   * met "container with given ID already exists" on every attempt, also after the cause had
   * gone (test/integration/agent/host/pressure-fd-limit.test.ts). */
  private leftover: DynoHandle | undefined;

  constructor(
    private readonly spec: DynoSpec,
    private readonly deps: Pick<DynoDeps, 'driver' | 'slugs' | 'stacks' | 'ports' | 'network'>,
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
    const { network } = this.deps;
    // The network is made while the slug is pinned (or downloaded): a ready namespace is taken
    // at once, and Docker's pause container (~170 ms) no longer waits for the slug.
    // A ready one comes with a host port already routed to it (a web dyno's $PORT).
    const web = isWebDyno(this.spec);
    const acquiring = network?.acquire({ stack: this.spec.stack, hostname: this.spec.id.slice(0, 63) }, web).then(({ net, port }) => {
      run.network = net;
      run.networkHeld = true;
      if (port !== undefined) {
        run.port = port;
        run.routed = true;
      }
    });
    const settled = () => acquiring?.catch(() => undefined);
    let slug: { path: string };
    try {
      slug = await this.pinSlug();
    } catch (err) {
      await settled();
      await this.releaseResources(run);
      throw err;
    }
    if (!wanted()) {
      this.releaseSlug();
      await settled();
      await this.releaseResources(run);
      return false;
    }
    let stack: { dir: string; shell: string };
    try {
      stack = this.deps.stacks.resolve(this.spec.stack);
      await acquiring;
      if (web && run.port === undefined) run.port = await this.deps.ports.reserve();
    } catch (err) {
      // The network may arrive after a failure here: it is given back only once it has.
      await settled();
      await this.releaseResources(run);
      throw err;
    }
    if (wanted()) await prestart();
    if (!wanted()) {
      await this.releaseResources(run);
      return false;
    }
    if (this.leftover) {
      // Thrown as the launch's failure: the dyno crashes and its restart (backed off) tries again.
      await this.deps.driver.destroy(this.leftover);
      this.leftover = undefined;
    }
    const containerNetwork = network && run.network ? { netns: run.network.netns, path: join(NETNS_DIR, run.network.netns), resolvConf: network.resolvConfFile } : undefined;
    run.containerStart = this.deps.driver.start({ ...dynoContainerSpec({ spec: this.spec, stack, slugDir: slug.path, port: run.port, host: this.host }), ...(containerNetwork ? { network: containerNetwork } : {}) });
    const route = network && run.network && run.port !== undefined && !run.routed ? network.route(run.port, run.network).then(() => { run.routed = true; }) : undefined;
    // Both settle before either's failure counts: a container that started while its route
    // failed is still destroyed by the cleanup of the failed launch.
    const [started, routed] = await Promise.allSettled([run.containerStart, route]);
    network?.refill();
    if (started.status === 'rejected') throw started.reason;
    run.handle = started.value;
    if (routed.status === 'rejected') throw routed.reason;
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
    if (record.network && this.deps.network) {
      // Held again whatever its state, so that its address is not handed out while the
      // container that may still use it is around; remove() tears it down with the container.
      run.network = record.network;
      run.networkHeld = true;
      run.routed = run.port !== undefined;
      if (!await this.deps.network.claim(record.network)) this.log.warn({ netns: record.network.netns }, "re-adopted dyno: its network namespace is gone");
    }
    await this.pinSlug().catch((err: unknown) => this.log.warn({ err }, 're-adopted dyno: its slug could not be pinned'));
    run.handle = found?.handle;
    if (!found) return { first: 'crashed' };
    // Only a web dyno's record holds a port.
    if (run.port === undefined || !found.running) return { first: 'up' };
    const { address } = this.host;
    return await probeOnce(run.network?.address ?? address, run.port) ? { first: 'up', endpoint: { host: address, port: run.port } } : { first: 'starting' };
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

  /** Destroys `run`'s container (mounts, dir), then gives back its route, network and port. */
  async remove(run: Incarnation): Promise<void> {
    // The dyno's container id and dir are the same for each of its containers: destroying the
    // current one also removes what a failed destroy left of an earlier one.
    const target = run.handle ?? this.leftover;
    if (target) {
      try {
        await this.deps.driver.destroy(target);
        this.leftover = undefined;
      } catch (err) {
        this.leftover = target;
        this.log.error({ err }, 'destroying dyno container failed; retried before its next start');
      }
    }
    await this.releaseResources(run);
  }

  private async releaseResources(run: Incarnation): Promise<void> {
    const { network } = this.deps;
    if (network && run.routed && run.port !== undefined) {
      run.routed = false;
      await network.unroute(run.port).catch((err: unknown) => this.log.error({ err, port: run.port }, "removing the dyno's route failed"));
    }
    if (network && run.network && run.networkHeld) {
      run.networkHeld = false;
      await network.release(run.network);
    }
    this.releasePort(run);
  }
}
