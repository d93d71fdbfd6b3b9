// The runc driver: an OCI bundle per dyno on an overlay rootfs, monitored by conmon.
// Files under the dyno's dir: config.json, rootfs/ (overlay mount), upper/, work/,
// exits/<cid>, pid, conmon.pid, log (k8s-file format), runc.log, sock/.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { constants as osConstants } from 'node:os';
import type { Logger } from '../../lib/log.js';
import { execBounded } from '../../lib/exec.js';
import { SlipwayError } from '../../../shared/errors.js';
import type { ContainerSpec, ContainerStatus, DynoExit, DynoHandle, RuntimeDriver } from '../driver.js';
import { buildOciConfig } from './oci-config.js';
import { launchConmon } from './conmon.js';
import { isAlive, watchExit } from './exit-watch.js';
import { mountOverlay, unmountOverlay } from '../overlay.js';
import { detectCgroupVersion, readOomKills, type CgroupVersion } from '../../host/cgroups.js';

/** `runc start|kill|state` are quick syscall sequences (~10 ms); 10 s means the runtime is wedged. */
export const RUNC_CALL_TIMEOUT_MS = 10_000;
/** `runc delete --force` may have to kill and reap a whole cgroup first. */
export const RUNC_DELETE_TIMEOUT_MS = 20_000;
/** After SIGKILL the kernel tears the processes down promptly; past this the dyno is reported
 * with an unknown exit rather than stalling the stop. */
export const KILL_SETTLE_TIMEOUT_MS = 10_000;

export interface RuncDriverOptions {
  runcPath?: string;
  conmonPath?: string;
  /** Parent cgroup for dynos, e.g. /slipway (tests use a unique one and remove it). */
  cgroupParent: string;
  log: Logger;
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
      runcLog: join(dir, 'runc.log'), config: join(dir, 'config.json'),
    };
  }

  async start(spec: ContainerSpec): Promise<DynoHandle> {
    const containerId = RuncDriver.containerId(spec.dynoId);
    const p = this.paths(spec.dir);
    const cgroupPath = `${this.opts.cgroupParent.replace(/\/$/, '')}/${containerId}`;
    const handle: DynoHandle = { driver: this.name, containerId, dir: spec.dir, cgroupPath };
    await mkdir(p.exits, { recursive: true });
    await mkdir(p.sock, { recursive: true });
    await writeFile(p.config, JSON.stringify(buildOciConfig(spec, { cgroupsPath: cgroupPath }), null, 2));
    await mountOverlay({ lower: [spec.slugDir, spec.stackDir], upper: p.upper, work: p.work, target: p.rootfs });
    try {
      handle.pid = await launchConmon({
        conmonPath: this.conmon, runcPath: this.runc, containerId, bundleDir: spec.dir, pidFile: p.pid,
        conmonPidFile: p.conmonPid, exitDir: p.exits, socketDir: p.sock, logPath: p.log, runcLogPath: p.runcLog,
      });
      handle.monitorPid = await readPid(p.conmonPid);
      await this.runcCall(['start', containerId]);
      return handle;
    } catch (err) {
      await this.destroy(handle).catch((e: unknown) => this.opts.log.warn({ err: e, containerId }, 'cleanup after failed start'));
      throw err;
    }
  }

  wait(handle: DynoHandle): Promise<DynoExit> {
    let w = this.waits.get(handle.containerId);
    if (!w) {
      w = this.waitOnce(handle);
      this.waits.set(handle.containerId, w);
    }
    return w;
  }

  private async waitOnce(handle: DynoHandle): Promise<DynoExit> {
    const code = await watchExit(join(handle.dir, 'exits'), handle.containerId, handle.monitorPid);
    const oomKills = handle.cgroupPath ? await readOomKills(handle.cgroupPath, this.cgroupVersion) : undefined;
    const signal = code !== null && code > 128 ? signalName(code - 128) : null;
    return { code, signal, oomKilled: (oomKills ?? 0) > 0 };
  }

  async signal(handle: DynoHandle, signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    const r = await this.runcCall(['kill', '--all', handle.containerId, signal.replace('SIG', '')], true);
    if (r.code !== 0 && !/not running|does not exist|container not running|process already finished/i.test(r.stderr)) {
      throw new SlipwayError('RUNTIME_FAILED', `runc kill ${handle.containerId} ${signal}: ${r.stderr.trim().slice(0, 300)}`);
    }
  }

  async stop(handle: DynoHandle, graceMs: number): Promise<{ forced: boolean; exit: DynoExit }> {
    const exited = this.wait(handle);
    await this.signal(handle, 'SIGTERM');
    const inGrace = await raceTimeout(exited, graceMs);
    if (inGrace) return { forced: false, exit: inGrace };
    await this.signal(handle, 'SIGKILL');
    const afterKill = await raceTimeout(exited, KILL_SETTLE_TIMEOUT_MS);
    return { forced: true, exit: afterKill ?? { code: null, signal: 'SIGKILL', oomKilled: false } };
  }

  async destroy(handle: DynoHandle): Promise<void> {
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

async function readPid(file: string): Promise<number | undefined> {
  try {
    const n = Number.parseInt((await readFile(file, 'utf8')).trim(), 10);
    return Number.isFinite(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

function signalName(n: number): string | null {
  for (const [name, num] of Object.entries(osConstants.signals)) if (num === n) return name;
  return null;
}

async function raceTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), ms); });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
