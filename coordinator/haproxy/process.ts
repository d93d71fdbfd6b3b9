// One HAProxy master (master-worker mode) as a child of the coordinator: start it, reload it
// through its master CLI, stop it. The master forks the worker that serves; a worker that dies
// takes the master with it (2.6's exit-on-failure), and a master that dies takes its workers,
// so the child's exit is the one signal the router's supervision needs. Its stderr (alerts,
// server state changes) goes to the log: alerts as warnings, the rest at debug.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../shared/log.js';
import { SlipwayError } from '../../shared/errors.js';
import type { HaproxyPaths } from './config.js';
import { RuntimeApi } from './runtime-api.js';
import { parseProc, type ProcTable } from './state.js';

/** HAProxy parses a config of a few thousand servers and binds in well under a second; 10 s
 * also covers a loaded host. The same bound holds for a reload (a re-exec and a fresh parse). */
export const START_TIMEOUT_MS = 10_000;
export const RELOAD_TIMEOUT_MS = 10_000;
/** `haproxy -c` of the generated config: a parse, no bind. */
const CHECK_TIMEOUT_MS = 10_000;
/** How often readiness and reload completion are polled. */
const POLL_MS = 25;
/** After a soft stop's grace, SIGTERM (hard stop) and then SIGKILL after this. */
const HARD_STOP_MS = 2_000;

export interface HaproxyProcessOptions {
  bin: string;
  paths: HaproxyPaths;
  log: Logger;
  /** Called once when the master exits, unless stop() asked it to. */
  onExit: (code: number | null, signal: NodeJS.Signals | null) => void;
}

/** `haproxy -c`: throws ROUTER_COMMAND_FAILED with HAProxy's complaint. */
export function checkConfig(bin: string, configPath: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(bin, ['-c', '-f', configPath], { timeout: CHECK_TIMEOUT_MS }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      reject(new SlipwayError('ROUTER_COMMAND_FAILED', `haproxy -c refused ${configPath}: ${alerts(stderr) || err.message}`, { cause: err }));
    });
  });
}

export class HaproxyProcess {
  readonly admin: RuntimeApi;
  readonly master: RuntimeApi;
  private child: ChildProcess | undefined;
  private stopping = false;
  private stderr = '';
  private exited: Promise<void> = Promise.resolve();

  constructor(private readonly options: HaproxyProcessOptions) {
    this.admin = new RuntimeApi(options.paths.adminSocket);
    this.master = new RuntimeApi(options.paths.masterSocket);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Spawned (it has a pid) and not exited. */
  get running(): boolean {
    return this.child?.pid !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGKILL, reported through onExit like any other death. */
  kill(): void {
    this.child?.kill('SIGKILL');
  }

  /** Spawns the master and resolves once its worker answers on the admin socket. */
  async start(): Promise<void> {
    const { bin, paths, log } = this.options;
    const child = spawn(bin, ['-W', '-S', `${paths.masterSocket},mode,600`, '-f', paths.config], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    let lineBuf = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      this.stderr = (this.stderr + text).slice(-4_000);
      lineBuf += text;
      let nl;
      while ((nl = lineBuf.indexOf('\n')) >= 0) {
        const line = lineBuf.slice(0, nl).trim();
        lineBuf = lineBuf.slice(nl + 1);
        if (line === '') continue;
        if (line.startsWith('[ALERT]')) log.warn({ haproxy: line }, 'haproxy alert');
        else log.debug({ haproxy: line }, 'haproxy');
      }
    });
    let spawnError: Error | undefined;
    child.once('error', (err) => { spawnError = err; });
    child.once('exit', (code, signal) => {
      if (!this.stopping) this.options.onExit(code, signal);
    });
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (spawnError) throw new SlipwayError('ROUTER_UNAVAILABLE', `cannot run ${bin}: ${spawnError.message}`, { cause: spawnError });
      if (!this.running && child.pid !== undefined) throw new SlipwayError('ROUTER_UNAVAILABLE', `haproxy exited at start (${child.exitCode ?? child.signalCode}): ${alerts(this.stderr) || tail(this.stderr)}`);
      // Ready when the worker answers on the admin socket and the master, whose CLI comes up
      // after it forked the worker, lists it.
      const worker = await this.currentWorker().catch(() => undefined);
      const proc = worker === undefined ? undefined : await this.proc().catch(() => undefined);
      if (worker !== undefined && proc?.workers.includes(worker)) return;
      await sleep(POLL_MS);
    }
    throw new SlipwayError('ROUTER_UNAVAILABLE', `haproxy did not serve its admin socket and master CLI within ${START_TIMEOUT_MS} ms: ${tail(this.stderr)}`);
  }

  async proc(): Promise<ProcTable> {
    return parseProc(await this.master.show('show proc'));
  }

  /** A hitless reload through the master CLI (the master re-executes itself with the config
   * file as it is now and hands the listeners to the new worker; the old worker finishes what
   * it serves). Resolves once the new worker answers on the admin socket. */
  async reload(): Promise<ProcTable> {
    const before = await this.proc();
    // The master closes the connection without an answer once the reload begins.
    await this.master.send('reload').catch(() => undefined);
    const deadline = Date.now() + RELOAD_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (!this.running) throw new SlipwayError('ROUTER_UNAVAILABLE', 'haproxy exited during a reload');
      const now = await this.proc().catch(() => undefined); // the master CLI is down while it re-executes
      if (now && now.failedReloads > before.failedReloads) throw new SlipwayError('ROUTER_COMMAND_FAILED', `haproxy refused the reload: ${tail(this.stderr)}`);
      if (now && now.reloads > before.reloads && now.workers.length > 0) {
        const worker = await this.currentWorker().catch(() => undefined);
        if (worker !== undefined && now.workers.includes(worker) && !before.workers.includes(worker)) return now;
      }
      await sleep(POLL_MS);
    }
    throw new SlipwayError('ROUTER_UNAVAILABLE', `haproxy's reload did not finish within ${RELOAD_TIMEOUT_MS} ms`);
  }

  /** Soft stop (the workers finish what they serve) for up to graceMs, then hard. */
  async stop(graceMs: number): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    this.stopping = true;
    child.kill('SIGUSR1');
    if (await within(this.exited, graceMs)) return;
    child.kill('SIGTERM');
    if (await within(this.exited, HARD_STOP_MS)) return;
    child.kill('SIGKILL');
    await this.exited;
  }

  /** The pid of the worker that answers on the admin socket now. */
  private async currentWorker(): Promise<number | undefined> {
    const info = await this.admin.show('show info');
    const pid = /^Pid:\s*(\d+)/m.exec(info)?.[1];
    return pid === undefined ? undefined : Number(pid);
  }
}

async function within(p: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), ms); });
  const done = await Promise.race([p.then(() => true), timeout]);
  clearTimeout(timer);
  return done;
}

/** HAProxy's [ALERT] lines, what a refused config or start is about. */
function alerts(text: string): string {
  return text.split('\n').filter((l) => l.startsWith('[ALERT]')).map((l) => l.replace(/^\[ALERT\]\s*\(\d+\)\s*:\s*/, '')).slice(-5).join(' | ');
}

function tail(text: string): string {
  return text.trim().split('\n').slice(-5).join(' | ');
}

/** A master left behind in the same workDir by a coordinator that died (nothing ends HAProxy
 * with its parent) would keep serving the old routes beside a new one (both bind with
 * SO_REUSEPORT): it is stopped before a new master starts. */
export async function stopStale(paths: HaproxyPaths, log: Logger): Promise<void> {
  const proc = await new RuntimeApi(paths.masterSocket, 500).show('show proc').then(parseProc).catch(() => undefined);
  if (!proc || proc.masterPid <= 0) return;
  log.warn({ pid: proc.masterPid }, 'stopping a haproxy master left in the work dir');
  const alive = (): boolean => {
    try { process.kill(proc.masterPid, 0); return true; } catch { return false; }
  };
  try { process.kill(proc.masterPid, 'SIGTERM'); } catch { return; }
  const deadline = Date.now() + HARD_STOP_MS;
  while (alive() && Date.now() < deadline) await sleep(POLL_MS);
  if (alive()) try { process.kill(proc.masterPid, 'SIGKILL'); } catch { /* gone */ }
}
