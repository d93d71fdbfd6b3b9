// The Docker driver: one container per dyno through the engine's API (dockerode), with the
// same dyno semantics as the runc and LXC drivers. The engine is the monitor outside the agent
// process: containerd's shim holds the dyno's stdio and exit status, dockerd writes the
// json-file log, so an agent restart loses neither; recover() finds the container again.
//
// Ownership: the container named `slipway-<dynoId>` (labels slipway.dyno, slipway.managed) is
// this driver's; a leftover of that name is removed before a start, so a dyno id never has two
// containers. Files under the dyno's dir: handle.json, app/ (the /app overlay mount, bound
// into the container), app-upper/ and app-work/ (its upper and work dirs).
//
// A dyno with its own network (spec.network) joins the pause container that holds it
// (pause.ts, made by the host network through netnsFactory() before the start). That container
// is the host network's, never this driver's: destroy() leaves it (the network is released
// after the dyno's container is gone), and nothing here lists or sweeps containers by label, so
// recovery and the dyno sweep (agent/dynos/sweep.ts: dyno dirs, `slipway-<dynoId>`) never
// meet one.
import { chmod, chown, mkdir, readFile, rm, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type Docker from 'dockerode';
import type { Logger } from '../../../shared/log.js';
import { SlipwayError } from '../../../shared/errors.js';
import type { NetnsFactory } from '../../network/host-network.js';
import type { ContainerSpec, ContainerStatus, ContainerStdio, DynoAttach, DynoExit, DynoHandle, DynoStats, LogSource, RecoveredDyno, RuntimeDriver } from '../driver.js';
import { readHandle, writeHandle } from '../handle-file.js';
import { gracefulStop, shared } from '../common.js';
import { mountOverlay, unmountOverlay } from '../overlay.js';
import { detectCgroupVersion, type CgroupVersion } from '../../host/cgroups.js';
import { procsDir, signalCgroup } from '../../host/cgroup-procs.js';
import { readDynoStats } from '../../host/cgroup-stats.js';
import { dockerSeccomp } from '../seccomp/profile.js';
import { buildCreateOptions, containerName } from './create-options.js';
import { AttachRegistry, DEFAULT_TTY_COLS, DEFAULT_TTY_ROWS, demuxOutput, stdinWriter, type HeldAttach } from '../attach-streams.js';
import { ATTACH_TIMEOUT_MS, createEngineClient, CREATE_TIMEOUT_MS, DEFAULT_DOCKER_SOCKET, hijackAttach, RESIZE_TIMEOUT_MS, engineCall, httpStatus, inspectContainer, KILL_TIMEOUT_MS, removeContainer, START_TIMEOUT_MS } from './engine.js';
import { stackHostsFile, StackImages } from './stack-image.js';
import { PauseContainers } from './pause.js';
import { waitForExit } from './exit.js';

/** stdcopy's stream types: 1 stdout, 2 stderr, 3 the engine's own error text (API 1.42+). */
const DOCKER_CHANNELS = { 1: 'stdout', 2: 'stderr', 3: 'stderr' } as const;

export interface DockerDriverOptions {
  /** Parent cgroup for dynos, e.g. /slipway (tests use a unique one and remove it). With the
   * engine's cgroupfs driver a dyno's cgroup is `<cgroupParent>/<container id>`. */
  cgroupParent: string;
  log: Logger;
  /** The engine's socket; default /var/run/docker.sock. */
  socketPath?: string;
  /** A stack's directory by name (the agent's StackStore.resolve): the pause container of a
   * dyno's network runs the stack's image and is made before the dyno's start (pause.ts).
   * Needed only to make networks; listing and removing them work without it. */
  stackDir?: (stack: string) => string;
}

export class DockerDriver implements RuntimeDriver {
  readonly name = 'docker';
  private readonly docker: Docker;
  private readonly images: StackImages;
  private readonly cgroupParent: string;
  private readonly cgroupVersion: CgroupVersion;
  private readonly waits = new Map<string, Promise<DynoExit>>();
  /** Docker's default profile resolved for the dyno capability set (seccomp/profile.ts), made
   * on the first start; a start never goes ahead without it. */
  private seccomp: string | undefined;
  private pause: PauseContainers | undefined;
  /** The streams of attached dynos started by this process, by container id. */
  private readonly attaches = new AttachRegistry();

  constructor(private readonly opts: DockerDriverOptions) {
    this.docker = createEngineClient(opts.socketPath);
    this.images = new StackImages(this.docker, opts.log);
    // Absolute, so the engine does not resolve it against its own cgroup.
    this.cgroupParent = `/${opts.cgroupParent.replace(/^\/+|\/+$/g, '')}`;
    this.cgroupVersion = detectCgroupVersion();
  }

  static containerName = containerName;

  /** The pause containers holding the dynos' network namespaces (one per driver: they share
   * its engine client, stack images and seccomp profile). */
  netnsFactory(): NetnsFactory {
    this.pause ??= new PauseContainers({
      docker: this.docker, images: this.images, cgroupParent: this.cgroupParent,
      seccompProfile: () => (this.seccomp ??= dockerSeccomp()),
      stackDir: this.opts.stackDir, log: this.opts.log,
    });
    return this.pause;
  }

  private paths(dir: string) {
    return { app: join(dir, 'app'), upper: join(dir, 'app-upper'), work: join(dir, 'app-work') };
  }

  /** The engine's name for the dyno's container: its id once known, else its name. */
  private ref(handle: DynoHandle): string {
    return handle.containerId || containerName(handle.dynoId);
  }

  async start(spec: ContainerSpec): Promise<DynoHandle> {
    const name = containerName(spec.dynoId);
    const p = this.paths(spec.dir);
    const image = await this.images.ensure(spec.stackName, spec.stackDir);
    await this.removeLeftover(name);
    await mkdir(spec.dir, { recursive: true });
    await chmod(spec.dir, 0o700);
    // /app starts from the slug again: whatever an earlier start of this dir wrote goes.
    await unmountOverlay(p.app);
    await Promise.all([p.upper, p.work].map((d) => rm(d, { recursive: true, force: true })));
    await Promise.all([p.upper, p.work].map((d) => mkdir(d)));
    // The overlay's root directory takes owner and mode from the upper dir: give it those of
    // the slug's app/ (the dyno user's, as the slug store leaves it), or /app is root's.
    const app = await stat(join(spec.slugDir, 'app'));
    await chown(p.upper, app.uid, app.gid);
    await chmod(p.upper, app.mode & 0o7777);
    const handle: DynoHandle = { driver: this.name, dynoId: spec.dynoId, containerId: '', dir: spec.dir, startedAt: new Date().toISOString(), data: { name, image } };
    await mountOverlay({ lower: [join(spec.slugDir, 'app')], upper: p.upper, work: p.work, target: p.app });
    try {
      this.seccomp ??= dockerSeccomp();
      const hostsFile = spec.network ? await stackHostsFile(spec.stackDir) : undefined;
      const body = buildCreateOptions(spec, { image, cgroupParent: this.cgroupParent, appDir: p.app, seccompProfile: this.seccomp, ...(hostsFile ? { hostsFile } : {}) });
      handle.containerId = await this.create(name, body);
      handle.cgroupPath = `${this.cgroupParent}/${handle.containerId}`;
      // Persisted before the start: from here on a restarted agent can find the container
      // (a `created` one it then removes; see recover()).
      await writeHandle(handle);
      if (spec.stdio) this.attaches.add(handle.containerId, await this.attachBeforeStart(handle.containerId, spec.stdio));
      await engineCall(`start ${name}`, START_TIMEOUT_MS, (abortSignal) => this.docker.getContainer(handle.containerId).start({ abortSignal }));
      // Engine 20.10 made the terminal 0x0 (create-options.ts TTY_SIZE_WAIT); it has it now.
      if (spec.stdio?.tty) await this.resize(handle.containerId, spec.stdio.cols ?? DEFAULT_TTY_COLS, spec.stdio.rows ?? DEFAULT_TTY_ROWS);
      const info = await inspectContainer(this.docker, handle.containerId);
      if (!info) throw new SlipwayError('RUNTIME_FAILED', `Docker container ${name} vanished right after its start`);
      if (info.State.Pid > 0) {
        handle.pid = info.State.Pid;
        handle.cgroupPath = (await cgroupOfPid(info.State.Pid, this.cgroupVersion, this.cgroupParent)) ?? handle.cgroupPath;
      }
      handle.data = { ...handle.data, logPath: (info as { LogPath?: string }).LogPath ?? '' };
      await writeHandle(handle);
      return handle;
    } catch (err) {
      await this.destroy(handle).catch((e: unknown) => this.opts.log.warn({ err: e, dynoId: spec.dynoId }, 'cleanup after failed start'));
      throw err;
    }
  }

  async recover(dir: string): Promise<RecoveredDyno | undefined> {
    const handle = await readHandle(dir);
    if (!handle || handle.driver !== this.name || !handle.containerId) return undefined;
    const info = await inspectContainer(this.docker, handle.containerId);
    // `created`: the agent died between create and start; nothing of the dyno ran.
    if (!info || info.State.Status === 'created') return undefined;
    if (info.State.Pid > 0) handle.pid = info.State.Pid;
    const logPath = (info as { LogPath?: string }).LogPath;
    if (logPath) handle.data = { ...handle.data, logPath };
    return { handle, running: info.State.Running || info.State.Restarting };
  }

  /**
   * The attach of an attached dyno, made before its start as `docker run -i` does, so nothing it
   * prints is missed. The connection is hijacked (HTTP upgrade): without a tty it carries
   * stdcopy frames (attach-streams.ts demuxes them), with one the terminal's raw bytes. Its
   * write side is the container's stdin; half-closing it makes the engine close that stdin
   * (StdinOnce, no tty) while the output goes on. With a tty the engine would end the output
   * on that half-close as well (moby's attach closes stdout once stdin ends unless StdinOnce
   * without a tty; moby#38457), so there end() leaves the connection open: EOF on a terminal is
   * its ^D, which the caller writes like any other byte.
   */
  private async attachBeforeStart(containerId: string, stdio: ContainerStdio): Promise<HeldAttach> {
    const socket = await engineCall(`attach ${containerId}`, ATTACH_TIMEOUT_MS, (abortSignal) =>
      hijackAttach(this.opts.socketPath ?? DEFAULT_DOCKER_SOCKET, containerId, stdio.stdin, abortSignal));
    // A reset connection (engine restart) ends the streams (attach-streams.ts); never an
    // unhandled error.
    socket.on('error', () => undefined);
    const { stdout, stderr } = demuxOutput(socket, stdio.tty ? undefined : DOCKER_CHANNELS);
    const stdin = stdinWriter(stdio.stdin ? socket : undefined, () => { if (!stdio.tty) socket.end(); });
    let closed = false;
    const attach: DynoAttach = {
      stdout, stderr, stdin,
      resize: (cols, rows) => (stdio.tty ? this.resize(containerId, cols, rows) : Promise.resolve()),
      close: () => {
        if (closed) return;
        closed = true;
        socket.destroy();
        for (const s of [stdout, stderr, stdin]) s.destroy();
      },
    };
    return { attach, released: () => Promise.resolve() };
  }

  private async resize(containerId: string, cols: number, rows: number): Promise<void> {
    if (!Number.isInteger(cols) || !Number.isInteger(rows) || cols < 1 || rows < 1 || cols > 65535 || rows > 65535) {
      throw new SlipwayError('RUNTIME_FAILED', `invalid terminal size ${cols}x${rows}`);
    }
    try {
      await engineCall(`resize ${containerId}`, RESIZE_TIMEOUT_MS, (abortSignal) =>
        this.docker.getContainer(containerId).resize({ h: rows, w: cols, abortSignal } as unknown as object));
    } catch (err) {
      // 404: gone; 409: not running. No terminal is left to size.
      if (httpStatus(err) === 404 || httpStatus(err) === 409) return;
      throw err;
    }
  }

  attach(handle: DynoHandle): DynoAttach {
    return this.attaches.take(this.ref(handle));
  }

  wait(handle: DynoHandle): Promise<DynoExit> {
    const ref = this.ref(handle);
    return shared(this.waits, ref, () => waitForExit(this.docker, ref, { log: this.opts.log }));
  }

  /** To every process of the dyno through its cgroup, once each (entrypoint.ts: the signal
   * contract): the engine's kill reaches only pid 1, the entry shell, which passes nothing on. */
  async signal(handle: DynoHandle, signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    if (handle.cgroupPath && existsSync(join(procsDir(handle.cgroupPath, this.cgroupVersion), 'cgroup.procs'))) {
      await signalCgroup(handle.cgroupPath, this.cgroupVersion, signal);
      return;
    }
    // No cgroup to read: the container has exited (its cgroup goes with it), or its cgroup is
    // not where we expect it (an engine whose cgroup driver is not cgroupfs); pid 1 through the engine
    // is then the best there is. A SIGTERM that way stops no app (the entry shell only notes
    // it); the SIGKILL after the grace ends pid 1 and with it the whole pid namespace.
    try {
      await engineCall(`kill ${this.ref(handle)}`, KILL_TIMEOUT_MS, (abortSignal) => this.docker.getContainer(this.ref(handle)).kill({ signal, abortSignal }));
    } catch (err) {
      // 404: gone; 409: not running. Either way there is nobody left to signal.
      if (httpStatus(err) === 404 || httpStatus(err) === 409) return;
      throw err;
    }
  }

  stop(handle: DynoHandle, graceMs: number): Promise<{ forced: boolean; exit: DynoExit }> {
    return gracefulStop(this, handle, graceMs);
  }

  /** The dyno's container only: the pause container of its network is the host network's. */
  async destroy(handle: DynoHandle): Promise<void> {
    // The streams go first: an engine whose attach copy is blocked on a reader that stopped
    // reading does not finish removing the container until that connection is gone.
    await this.attaches.release(this.ref(handle));
    await removeContainer(this.docker, this.ref(handle));
    await unmountOverlay(this.paths(handle.dir).app);
    await rm(handle.dir, { recursive: true, force: true, maxRetries: 3 });
    this.waits.delete(this.ref(handle));
  }

  async inspect(handle: DynoHandle): Promise<{ status: ContainerStatus; pid?: number }> {
    const info = await inspectContainer(this.docker, this.ref(handle));
    if (!info) return { status: 'missing' };
    const s = info.State;
    const status: ContainerStatus = s.Status === 'created' ? 'created' : s.Running || s.Restarting ? 'running' : 'stopped';
    return s.Pid > 0 ? { status, pid: s.Pid } : { status };
  }

  stats(handle: DynoHandle): Promise<DynoStats | undefined> {
    return handle.cgroupPath ? readDynoStats(handle.cgroupPath, this.cgroupVersion) : Promise.resolve(undefined);
  }

  log(handle: DynoHandle): LogSource {
    const recorded = handle.data?.logPath;
    // Only a dyno whose start never completed lacks the path; this is where the engine's
    // default data root (/var/lib/docker) puts it.
    const id = handle.containerId;
    const path = typeof recorded === 'string' && recorded ? recorded : `/var/lib/docker/containers/${id}/${id}-json.log`;
    return { path, format: 'docker-json' };
  }

  private async create(name: string, body: Docker.ContainerCreateOptions): Promise<string> {
    // The body goes in `_body` and only the name in `_query`: given plain options, dockerode
    // would also copy every field (the env with the app's config vars) into the URL.
    const call = () => engineCall(`create ${name}`, CREATE_TIMEOUT_MS, (abortSignal) =>
      this.docker.createContainer({ _query: { name }, _body: body, abortSignal } as unknown as Docker.ContainerCreateOptions));
    try {
      return (await call()).id;
    } catch (err) {
      // 409: a container of that name appeared since removeLeftover (a concurrent start).
      if (httpStatus(err) !== 409) throw err;
      await this.removeLeftover(name);
      return (await call()).id;
    }
  }

  private async removeLeftover(name: string): Promise<void> {
    const old = await inspectContainer(this.docker, name);
    if (!old) return;
    this.opts.log.warn({ container: name, containerId: old.Id, status: old.State.Status }, 'removing a leftover container of this dyno id');
    await removeContainer(this.docker, old.Id);
  }
}

/** The cgroup a process is in, as the engine really placed it (the pids hierarchy on v1, as
 * cgroup-procs.ts reads it; the unified one on v2); undefined once the process is gone. */
/** The cgroup of the container's pid 1, when it is below `parent`. A process that has exited
 * but not been reaped yet (a quick command) shows `/` there under cgroup v1, and signalling
 * that would reach every process on the host: anything not below the parent is ignored. */
export async function cgroupOfPid(pid: number, version: CgroupVersion, parent: string, procRoot = '/proc'): Promise<string | undefined> {
  const text = await readFile(`${procRoot}/${pid}/cgroup`, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const [, controllers, path] = /^\d+:([^:]*):(.*)$/.exec(line) ?? [];
    if (path === undefined) continue;
    if (version === 2 ? controllers === '' : controllers!.split(',').includes('pids')) {
      return path.startsWith(`${parent.replace(/\/$/, '')}/`) ? path : undefined;
    }
  }
  return undefined;
}
