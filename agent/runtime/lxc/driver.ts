// The LXC driver: LXC 5's lxc-execute (init.lxc as pid 1, the dyno's shell as its child) on
// the same overlay rootfs as the runc driver, under conmon, which keeps the dyno's stdio, its
// k8s-file log and its exit status outside the agent (scripts.ts explains the shim). Heroku's
// common runtime runs dynos in LXC.
//
// Files under the dyno's dir: handle.json, lxc.conf, runtime, stop-hook, seccomp, rootfs/ (overlay), upper/, work/, exits/<cid>, pid, conmon.pid, log, oom, lxc.log,
// lxc/ (LXC's lxcpath), sock/; for an attached dyno also start-gate (scripts.ts), attach-relay.pl and
// conmon's attach socket and fifos.
import { chmod, chown, mkdir, open, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { constants as fsConstants, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../../shared/log.js';
import { realClock, type Clock } from '../../lib/clock.js';
import { SlipwayError } from '../../../shared/errors.js';
import type { ContainerSpec, ContainerStatus, DynoAttach, DynoExit, DynoHandle, DynoStats, LogSource, RecoveredDyno, RuntimeDriver } from '../driver.js';
import { writeHandle } from '../handle-file.js';
import { gracefulStop, KILL_SETTLE_TIMEOUT_MS, readPid, shared, signalFromExitCode } from '../common.js';
import { recoverMonitored } from '../conmon/recover.js';
import { launchConmon } from '../conmon/launch.js';
import { connectAttachRelay } from '../conmon/attach-relay.js';
import { AttachRegistry } from '../attach-streams.js';
import { isAlive, watchExit } from '../conmon/exit-watch.js';
import { overlayMountLine, prepareOverlay, unmountOverlay } from '../overlay.js';
import { cgroupDirs, detectCgroupVersion, oomCounterFile, parseOomKills, type CgroupVersion } from '../../host/cgroups.js';
import { cgroupPids, signalCgroup } from '../../host/cgroup-procs.js';
import { readDynoStats } from '../../host/cgroup-stats.js';
import { buildLxcConfig } from './lxc-config.js';
import { lxcSeccomp } from '../seccomp/profile.js';
import { entryScript, runtimeShim, stopHookScript } from './scripts.js';

/** lxc-execute setting up namespaces, mounts and cgroups takes ~15 ms here (`sh -c true` in
 * ~30 ms in all); the dyno counts as started once its cgroup holds a process. 30 s covers a
 * loaded host, as CONMON_CREATE_TIMEOUT_MS does. */
export const LXC_RUNNING_TIMEOUT_MS = 30_000;
/** Poll period while waiting for the cgroup to fill or empty: a read of cgroup.procs costs
 * ~20 µs, and the start's latency is what the operator waits for. */
const POLL_MS = 1;

export interface LxcDriverOptions {
  conmonPath?: string;
  cgroupParent: string;
  log: Logger;
  /** The seccomp policy in LXC's format; default: the dyno profile (seccomp/profile.ts). */
  seccompPolicy?: () => string;
  /** The start and kill-settle waits are deadlines on its monotonic reading (clock.ts). */
  clock?: Pick<Clock, 'monotonic'>;
}

export class LxcDriver implements RuntimeDriver {
  readonly name = 'lxc';
  private readonly conmon: string;
  private readonly cgroupVersion: CgroupVersion;
  private readonly waits = new Map<string, Promise<DynoExit>>();
  /** The streams of attached dynos started by this process (attach-streams.ts). */
  private readonly attaches = new AttachRegistry();
  private seccomp: string | undefined;
  private readonly clock: Pick<Clock, 'monotonic'>;

  constructor(private readonly opts: LxcDriverOptions) {
    this.clock = opts.clock ?? realClock;
    this.conmon = opts.conmonPath ?? (['/usr/bin/conmon', '/usr/libexec/podman/conmon', '/usr/local/bin/conmon'].find((p) => existsSync(p)) ?? 'conmon');
    this.cgroupVersion = detectCgroupVersion();
  }

  static containerId(dynoId: string): string {
    return `slipway-${dynoId}`;
  }

  private paths(dir: string) {
    const f = (n: string) => join(dir, n);
    return {
      rootfs: f('rootfs'), upper: f('upper'), work: f('work'), exits: f('exits'), sock: f('sock'), lxcPath: f('lxc'),
      pid: f('pid'), conmonPid: f('conmon.pid'), log: f('log'), config: f('lxc.conf'), runtime: f('runtime'),
      stopHook: f('stop-hook'), seccomp: f('seccomp'), oom: f('oom'), lxcLog: f('lxc.log'), gate: f('start-gate'),
    };
  }

  async start(spec: ContainerSpec): Promise<DynoHandle> {
    if (spec.stdio?.tty) {
      // conmon gets a terminal from its runtime only as a pty master sent over its console
      // socket (SCM_RIGHTS); the shim below is a shell script and cannot, and lxc-execute has
      // no such interface. Refused before anything is made.
      throw new SlipwayError('RUNTIME_TTY_UNSUPPORTED', `LXC dynos cannot have a terminal (${spec.dynoId}); attach without a tty`);
    }
    const containerId = LxcDriver.containerId(spec.dynoId);
    const p = this.paths(spec.dir);
    const cgroupPath = `${this.opts.cgroupParent.replace(/\/$/, '')}/${containerId}`;
    const handle: DynoHandle = { driver: this.name, dynoId: spec.dynoId, containerId, dir: spec.dir, cgroupPath, startedAt: new Date().toISOString() };
    await Promise.all([p.exits, p.sock, p.lxcPath].map((d) => mkdir(d, { recursive: true })));
    await chmod(spec.dir, 0o700);
    this.seccomp ??= (this.opts.seccompPolicy ?? lxcSeccomp)();
    const seccomp = this.seccomp;
    const config = buildLxcConfig({
      hostname: spec.hostname, rootfs: p.rootfs, user: spec.user, cwd: spec.cwd, limits: spec.limits, cgroupPath,
      cgroupVersion: this.cgroupVersion, ...(seccomp ? { seccompFile: p.seccomp } : {}), stopHook: p.stopHook, logFile: p.lxcLog,
      ...(spec.network ? { network: { path: spec.network.path, resolvConf: spec.network.resolvConf } } : {}),
    });
    const overlay = { lower: [spec.slugDir, spec.stackDir], upper: p.upper, work: p.work, target: p.rootfs };
    await Promise.all([
      seccomp ? writeFile(p.seccomp, seccomp, { mode: 0o600 }) : undefined,
      writeFile(p.config, config, { mode: 0o600 }),
      writeFile(p.runtime, runtimeShim({ containerId, lxcPath: p.lxcPath, config: p.config, mountLine: overlayMountLine(overlay), ...(spec.stdio ? { gate: p.gate } : {}) }), { mode: 0o700 }),
      writeFile(p.stopHook, stopHookScript({ counterFile: oomCounterFile(cgroupPath, this.cgroupVersion), out: p.oom }), { mode: 0o700 }),
      prepareOverlay(overlay),
    ]);
    try {
      // Into the upper dir: the shim mounts the overlay, where it then shows as /.slipway-entry.
      const entry = join(p.upper, '.slipway-entry');
      await writeFile(entry, entryScript(spec.env, spec.args), { mode: 0o500 });
      await chown(entry, spec.user.uid, spec.user.gid);
      handle.pid = await launchConmon({
        conmonPath: this.conmon, runtimePath: p.runtime, runtimeArgs: [], containerId, bundleDir: spec.dir,
        pidFile: p.pid, conmonPidFile: p.conmonPid, exitDir: p.exits, socketDir: p.sock, logPath: p.log,
        ...(spec.stdio ? { stdio: spec.stdio } : {}),
      });
      handle.monitorPid = await readPid(p.conmonPid);
      await writeHandle(handle);
      if (spec.stdio) {
        // lxc-execute waits on the gate: the relay connects while the command cannot print yet.
        const held = await connectAttachRelay({ dir: spec.dir, stdio: spec.stdio, resize: () => Promise.resolve() });
        this.attaches.add(containerId, held);
        await this.openGate(p.gate);
      }
      await this.untilRunning(handle);
      return handle;
    } catch (err) {
      await this.destroy(handle).catch((e: unknown) => this.opts.log.warn({ err: e, containerId }, 'cleanup after failed start'));
      throw err;
    }
  }

  /** Resolves once the dyno's cgroup holds its first process under init.lxc, or lxc-execute exited having run it (a
   * dyno may be done before the first look). lxc-execute's own failures (a bad config, a
   * failed setup) are lines of its own on stderr, `lxc-execute: <name>: ...`, which conmon
   * logs; those make the start fail with them as the cause. */
  private async untilRunning(handle: DynoHandle): Promise<void> {
    const deadline = this.clock.monotonic() + LXC_RUNNING_TIMEOUT_MS;
    while (this.clock.monotonic() < deadline) {
      // init.lxc is in the cgroup while LXC still sets up (and may yet fail); the dyno runs once
      // init.lxc has its child.
      if ((await cgroupPids(handle.cgroupPath!, this.cgroupVersion)).length >= 2) return;
      if (!isAlive(handle.pid) || existsSync(join(handle.dir, 'exits', handle.containerId))) {
        const marker = `lxc-execute: ${handle.containerId}: `;
        const failures = (await readFile(join(handle.dir, 'log'), 'utf8').catch(() => '')).split('\n')
          .map((l) => l.replace(/^\S+ (stdout|stderr) [FP] ?/, '')).filter((l) => l.includes(marker));
        if (failures.length === 0) return;
        throw new SlipwayError('RUNTIME_FAILED', `lxc-execute ${handle.containerId} failed: ${failures.slice(-3).join(' ').slice(0, 500)}`);
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    throw new SlipwayError('RUNTIME_TIMEOUT', `lxc-execute ${handle.containerId} did not start the dyno within ${LXC_RUNNING_TIMEOUT_MS} ms`);
  }

  /** Lets the gated lxc-execute of an attached dyno go (scripts.ts runtimeShim): one line into
   * the gate fifo, once its reader is there (the shim's background process opens it within
   * milliseconds of conmon's create returning; until then a non-blocking open fails ENXIO). */
  private async openGate(gate: string): Promise<void> {
    const deadline = this.clock.monotonic() + LXC_RUNNING_TIMEOUT_MS;
    for (;;) {
      try {
        const fh = await open(gate, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
        try { await fh.write('go\n'); } finally { await fh.close(); }
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENXIO') throw new SlipwayError('RUNTIME_FAILED', `start gate of ${gate}: ${(err as Error).message}`, { cause: err });
      }
      if (this.clock.monotonic() >= deadline) throw new SlipwayError('RUNTIME_TIMEOUT', `the launcher of ${gate} did not wait on its start gate within ${LXC_RUNNING_TIMEOUT_MS} ms`);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  attach(handle: DynoHandle): DynoAttach {
    return this.attaches.take(handle.containerId);
  }

  recover(dir: string): Promise<RecoveredDyno | undefined> {
    return recoverMonitored(this, dir);
  }

  wait(handle: DynoHandle): Promise<DynoExit> {
    return shared(this.waits, handle.containerId, () => this.waitOnce(handle));
  }

  private async waitOnce(handle: DynoHandle): Promise<DynoExit> {
    const code = await watchExit(join(handle.dir, 'exits'), handle.containerId, handle.monitorPid);
    // The stop hook saved the counter just before LXC removed the cgroup; if LXC died before
    // running it, the cgroup may still be there.
    const saved = await readFile(join(handle.dir, 'oom'), 'utf8').catch(() => undefined);
    const live = saved ?? (handle.cgroupPath ? await readFile(oomCounterFile(handle.cgroupPath, this.cgroupVersion), 'utf8').catch(() => '') : '');
    const signal = signalFromExitCode(code);
    return { code, signal, oomKilled: parseOomKills(live) > 0 };
  }

  /** To every process of the dyno, once each (entrypoint.ts: the signal contract), but not to
   * init.lxc on SIGTERM: init.lxc is LXC's, not the dyno's, and a SIGTERM of its own makes it
   * send SIGTERM to every process of the container (a second one for each) and SIGKILL to all
   * a second later, cutting the grace to 1 s (seen with LXC 5.0.2: exit 137 after ~1 s; its
   * lxc_init.c does kill(-1, SIGTERM) then alarm(1)). init.lxc is the one process of the
   * cgroup whose parent is lxc-execute (handle.pid). SIGKILL goes to all. */
  async signal(handle: DynoHandle, signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    if (!handle.cgroupPath) return;
    for (const pid of await cgroupPids(handle.cgroupPath, this.cgroupVersion)) {
      if (signal === 'SIGTERM' && handle.pid !== undefined && parentPid(pid) === handle.pid) continue;
      try { process.kill(pid, signal); } catch { /* gone */ }
    }
  }

  stop(handle: DynoHandle, graceMs: number): Promise<{ forced: boolean; exit: DynoExit }> {
    return gracefulStop(this, handle, graceMs);
  }

  async destroy(handle: DynoHandle): Promise<void> {
    const p = this.paths(handle.dir);
    const cgroupPath = handle.cgroupPath ?? `${this.opts.cgroupParent.replace(/\/$/, '')}/${handle.containerId}`;
    // The streams first: conmon blocked writing to a relay nobody reads would not exit.
    await this.attaches.release(handle.containerId);
    await signalCgroup(cgroupPath, this.cgroupVersion, 'SIGKILL');
    const monitorPid = handle.monitorPid ?? (await readPid(p.conmonPid));
    // lxc-execute (the launcher) and conmon go too, whatever state a crash left them in.
    const launcher = handle.pid ?? (await readPid(p.pid));
    for (const pid of [launcher, monitorPid]) {
      if (pid && isAlive(pid)) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
    }
    // LXC removes its cgroups once lxc-execute has reaped the dyno; wait for that, then remove
    // what a killed lxc-execute left behind.
    const deadline = this.clock.monotonic() + KILL_SETTLE_TIMEOUT_MS;
    // The monitor's cgroup too: the killed lxc-execute sits in it until it is gone, and an
    // rmdir before that fails with EBUSY and leaves the cgroup behind.
    const busy = async () => (await cgroupPids(cgroupPath, this.cgroupVersion)).length > 0 || (await cgroupPids(`${cgroupPath}.monitor`, this.cgroupVersion)).length > 0;
    while (this.clock.monotonic() < deadline && (await busy())) await new Promise((r) => setTimeout(r, POLL_MS));
    for (const cg of [cgroupPath, `${cgroupPath}.monitor`]) {
      for (const d of cgroupDirs(cg, this.cgroupVersion)) await rmdir(d).catch(() => undefined);
    }
    await unmountOverlay(p.rootfs);
    await rm(handle.dir, { recursive: true, force: true, maxRetries: 3 });
    this.waits.delete(handle.containerId);
  }

  async inspect(handle: DynoHandle): Promise<{ status: ContainerStatus; pid?: number }> {
    if (existsSync(join(handle.dir, 'exits', handle.containerId))) return { status: 'stopped' };
    if (!isAlive(handle.monitorPid)) return { status: 'missing' };
    const running = handle.cgroupPath ? (await cgroupPids(handle.cgroupPath, this.cgroupVersion)).length > 0 : false;
    if (running) return handle.pid ? { status: 'running', pid: handle.pid } : { status: 'running' };
    return { status: 'created' };
  }

  stats(handle: DynoHandle): Promise<DynoStats | undefined> {
    return handle.cgroupPath ? readDynoStats(handle.cgroupPath, this.cgroupVersion) : Promise.resolve(undefined);
  }

  log(handle: DynoHandle): LogSource {
    return { path: join(handle.dir, 'log'), format: 'k8s-file' };
  }
}

function parentPid(pid: number): number | undefined {
  try {
    // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}




