// The runc driver: an OCI bundle per dyno on an overlay rootfs, monitored by conmon.
// Files under the dyno's dir: handle.json, config.json, runtime (the shim below), rootfs/
// (overlay mount), upper/, work/, exits/<cid>, pid, conmon.pid, log (k8s-file), runc.log, sock/;
// conmon's attach socket, ctl and winsz fifos; attach-relay.pl (attached dynos only).
//
// conmon runs `RUNTIME create ...` and the agent would then run `runc start`: two runc
// processes. The per-dyno `runtime` shim turns conmon's create into `runc run --detach`, one
// runc process that creates and starts, which saves ~7 ms of a ~60 ms start here
// (scripts/bench/start.sh); conmon adopts the container process either way. The shim also
// mounts the overlay first (overlay.ts: overlayMountLine), which keeps a spawn from the agent
// off the start path.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../../shared/log.js';
import { execBounded } from '../../lib/exec.js';
import { SlipwayError } from '../../../shared/errors.js';
import type { ContainerSpec, ContainerStatus, DynoAttach, DynoExit, DynoHandle, DynoStats, LogSource, RecoveredDyno, RuntimeDriver } from '../driver.js';
import { writeHandle } from '../handle-file.js';
import { gracefulStop, readPid, shared, signalFromExitCode } from '../common.js';
import { recoverMonitored } from '../conmon/recover.js';
import { readDynoStats } from '../../host/cgroup-stats.js';
import { buildOciConfig } from './oci-config.js';
import { validateOciConfig } from './oci-schema.js';
import { ociSeccomp, type OciSeccomp } from '../seccomp/profile.js';
import { launchConmon } from '../conmon/launch.js';
import { connectAttachRelay, conmonResize } from '../conmon/attach-relay.js';
import { AttachRegistry } from '../attach-streams.js';
import { isAlive, watchExit } from '../conmon/exit-watch.js';
import { overlayMountLine, prepareOverlay, unmountOverlay } from '../overlay.js';
import { shellQuote } from '../../../shared/shell-quote.js';
import { detectCgroupVersion, readOomKills, type CgroupVersion } from '../../host/cgroups.js';

/** `runc start|kill|state` are quick syscall sequences (~10 ms); 10 s means the runtime is wedged. */
export const RUNC_CALL_TIMEOUT_MS = 10_000;
/** `runc delete --force` may have to kill and reap a whole cgroup first. */
export const RUNC_DELETE_TIMEOUT_MS = 20_000;

export interface RuncDriverOptions {
  runcPath?: string;
  conmonPath?: string;
  /** Parent cgroup for dynos, e.g. /slipway (tests use a unique one and remove it). */
  cgroupParent: string;
  log: Logger;
}

/** The shim conmon runs as its runtime (see the top of this file): mounts the rootfs overlay,
 * then execs `runc run --detach`; for an attached dyno `runc create` (conmon's own arguments,
 * --console-socket included, pass through), so that the driver connects the attach relay
 * before it runs `runc start` and nothing the command prints early is missed. */
export function runcRunShim(runcPath: string, runcLog: string, mountLine: string, attached = false): string {
  const q = shellQuote;
  return `#!/bin/sh\n[ "$1" = create ] || { echo "slipway runc shim: unsupported command $1" >&2; exit 1; }\nshift\n${mountLine}\nexec ${q(runcPath)} --log=${q(runcLog)} --log-format=json ${attached ? 'create' : 'run --detach'} "$@"\n`;
}

function firstExisting(candidates: string[], fallback: string): string {
  return candidates.find((p) => existsSync(p)) ?? fallback;
}

export class RuncDriver implements RuntimeDriver {
  readonly name = 'runc';
  private readonly runc: string;
  private readonly conmon: string;
  private readonly cgroupVersion: CgroupVersion;
  private readonly waits = new Map<string, Promise<DynoExit>>();
  /** The streams of attached dynos started by this process (attach-streams.ts). */
  private readonly attaches = new AttachRegistry();
  /** Resolved once per agent: the profile depends only on the host (arch, kernel). */
  private seccomp: OciSeccomp | undefined;

  constructor(private readonly opts: RuncDriverOptions) {
    // conmon needs an absolute runtime path.
    this.runc = opts.runcPath ?? firstExisting(['/usr/sbin/runc', '/usr/bin/runc', '/usr/local/sbin/runc'], 'runc');
    this.conmon = opts.conmonPath ?? firstExisting(['/usr/bin/conmon', '/usr/libexec/podman/conmon', '/usr/local/bin/conmon'], 'conmon');
    this.cgroupVersion = detectCgroupVersion();
  }

  static containerId(dynoId: string): string {
    return `slipway-${dynoId}`;
  }

  private paths(dir: string) {
    return {
      rootfs: join(dir, 'rootfs'), upper: join(dir, 'upper'), work: join(dir, 'work'), exits: join(dir, 'exits'),
      sock: join(dir, 'sock'), pid: join(dir, 'pid'), conmonPid: join(dir, 'conmon.pid'), log: join(dir, 'log'),
      runcLog: join(dir, 'runc.log'), config: join(dir, 'config.json'), runtime: join(dir, 'runtime'),
    };
  }

  async start(spec: ContainerSpec): Promise<DynoHandle> {
    const containerId = RuncDriver.containerId(spec.dynoId);
    const p = this.paths(spec.dir);
    const cgroupPath = `${this.opts.cgroupParent.replace(/\/$/, '')}/${containerId}`;
    const handle: DynoHandle = { driver: this.name, dynoId: spec.dynoId, containerId, dir: spec.dir, cgroupPath, startedAt: new Date().toISOString() };
    await Promise.all([mkdir(p.exits, { recursive: true }), mkdir(p.sock, { recursive: true })]);
    this.seccomp ??= ociSeccomp();
    const config = buildOciConfig(spec, { cgroupsPath: cgroupPath, seccomp: this.seccomp });
    // Every config is checked against the runtime-spec schema before runc sees it (a few
    // microseconds once compiled); a failure is a slipway bug and nothing is started.
    validateOciConfig(config);
    const overlay = { lower: [spec.slugDir, spec.stackDir], upper: p.upper, work: p.work, target: p.rootfs };
    await Promise.all([
      writeFile(p.config, JSON.stringify(config), { mode: 0o600 }),
      writeFile(p.runtime, runcRunShim(this.runc, p.runcLog, overlayMountLine(overlay), spec.stdio !== undefined), { mode: 0o700 }),
      prepareOverlay(overlay),
    ]);
    try {
      handle.pid = await launchConmon({
        conmonPath: this.conmon, runtimePath: p.runtime, runtimeArgs: [],
        containerId, bundleDir: spec.dir, pidFile: p.pid, conmonPidFile: p.conmonPid, exitDir: p.exits,
        socketDir: p.sock, logPath: p.log, ...(spec.stdio ? { stdio: spec.stdio } : {}),
      });
      handle.monitorPid = await readPid(p.conmonPid);
      if (spec.stdio) {
        // Created, not started: the relay connects while the command cannot print yet.
        const held = await connectAttachRelay({ dir: spec.dir, stdio: spec.stdio, resize: (cols, rows) => conmonResize(spec.dir, cols, rows) });
        this.attaches.add(containerId, held);
        await this.runcCall(['start', containerId]);
      }
      // The dyno runs from here. Should the agent die before the handle is written, the dir
      // without a handle is swept at its next start (sweep.ts), container and all.
      await writeHandle(handle);
      return handle;
    } catch (err) {
      await this.destroy(handle).catch((e: unknown) => this.opts.log.warn({ err: e, containerId }, 'cleanup after failed start'));
      throw err;
    }
  }

  recover(dir: string): Promise<RecoveredDyno | undefined> {
    return recoverMonitored(this, dir);
  }

  stats(handle: DynoHandle): Promise<DynoStats | undefined> {
    return handle.cgroupPath ? readDynoStats(handle.cgroupPath, this.cgroupVersion) : Promise.resolve(undefined);
  }

  log(handle: DynoHandle): LogSource {
    return { path: join(handle.dir, 'log'), format: 'k8s-file' };
  }

  wait(handle: DynoHandle): Promise<DynoExit> {
    return shared(this.waits, handle.containerId, () => this.waitOnce(handle));
  }

  private async waitOnce(handle: DynoHandle): Promise<DynoExit> {
    const code = await watchExit(join(handle.dir, 'exits'), handle.containerId, handle.monitorPid);
    const oomKills = handle.cgroupPath ? await readOomKills(handle.cgroupPath, this.cgroupVersion) : undefined;
    const signal = signalFromExitCode(code);
    return { code, signal, oomKilled: (oomKills ?? 0) > 0 };
  }

  /** `runc kill --all`: to every process of the container's cgroup, the entry shell included,
   * once each (entrypoint.ts: the signal contract). */
  async signal(handle: DynoHandle, signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    const r = await this.runcCall(['kill', '--all', handle.containerId, signal.replace('SIG', '')], true);
    if (r.code !== 0 && !/not running|does not exist|container not running|process already finished/i.test(r.stderr)) {
      throw new SlipwayError('RUNTIME_FAILED', `runc kill ${handle.containerId} ${signal}: ${r.stderr.trim().slice(0, 300)}`);
    }
  }

  stop(handle: DynoHandle, graceMs: number): Promise<{ forced: boolean; exit: DynoExit }> {
    return gracefulStop(this, handle, graceMs);
  }

  attach(handle: DynoHandle): DynoAttach {
    return this.attaches.take(handle.containerId);
  }

  async destroy(handle: DynoHandle): Promise<void> {
    // The streams first: conmon blocked writing to a relay nobody reads would not exit.
    await this.attaches.release(handle.containerId);
    await this.runcCall(['delete', '--force', handle.containerId], true, RUNC_DELETE_TIMEOUT_MS);
    // conmon exits on its own once the container is gone; make sure of it.
    const monitorPid = handle.monitorPid ?? (await readPid(join(handle.dir, 'conmon.pid')));
    if (monitorPid && isAlive(monitorPid)) {
      try { process.kill(monitorPid, 'SIGKILL'); } catch { /* already gone */ }
    }
    await unmountOverlay(join(handle.dir, 'rootfs'));
    await rm(handle.dir, { recursive: true, force: true, maxRetries: 3 });
    this.waits.delete(handle.containerId);
  }

  async inspect(handle: DynoHandle): Promise<{ status: ContainerStatus; pid?: number }> {
    const r = await this.runcCall(['state', handle.containerId], true);
    if (r.code !== 0) return { status: 'missing' };
    const state = JSON.parse(r.stdout) as { status: string; pid: number };
    const status: ContainerStatus = state.status === 'running' || state.status === 'created' ? state.status : 'stopped';
    return state.pid > 0 ? { status, pid: state.pid } : { status };
  }

  private runcCall(args: string[], allowFailure = false, timeoutMs = RUNC_CALL_TIMEOUT_MS) {
    return execBounded(this.runc, args, { timeoutMs, allowFailure });
  }
}



