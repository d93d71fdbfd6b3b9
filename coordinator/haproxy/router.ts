// The coordinator's real router (`--router haproxy`): an HAProxy 2.6 child in master-worker
// mode that mirrors the route table, driven through its runtime API on the admin socket so
// that dyno changes need no reload. This object is the only writer of HAProxy's state: the
// config file, the map file and every runtime API change.
//
// What each route table change becomes (reconcile.ts has the rules as pure functions):
// - a route added (its dyno is `up`): `add server <app backend>/<dyno id> addr:port`, then
//   `enable server`;
// - a route removed (its dyno is `stopping`, crashed or no longer wanted): at once
//   `set server ... state drain`, so no new request goes to it while those in flight finish.
//   settle() resolves once that is done: the coordinator SIGTERMs a dyno only after it.
// - "Remove it after down": the router does not see dyno states, only routes, so it cannot
//   wait for `down` itself. It removes a drained server (`state maint`, `shutdown sessions
//   server`, `del server`) once HAProxy counts no session and no queue on it (the dyno's last
//   in-flight request is answered: from then on nothing can reach it, whether it is still
//   stopping or down), or once it has drained for drainMaxMs (default 35 s: the dyno's 30 s
//   stop grace and a margin, by when the agent has reported it down or killed it, R12).
// - a new app: 2.6 has no `add backend`, so the config is generated again, with a backend per
//   app and every current route written in as a server (runtime-added servers vanish on a
//   reload), checked with `haproxy -c`, and loaded by a hitless reload through the master
//   CLI; the host map file is written with it. Drained servers are left out: the old worker
//   finishes their requests.
// - every reconcileMs (default 25 s), and after every (re)start and reload: the whole table
//   against `show backend`, `show servers state`, `show stat` and `show map` (add what is
//   missing, drain what is extra, fix addresses and map entries).
// - HAProxy's master exits (its worker died, or it was killed): restarted with backoff from a
//   config generated from the table as it is then, and reconciled.
//
// settle() resolves once every route change made before the call is applied in HAProxy, or
// rejects with ROUTER_UNAVAILABLE after settleTimeoutMs (HAProxy down, or refusing commands).
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../shared/log.js';
import { asSlipwayError, SlipwayError } from '../../shared/errors.js';
import type { RouteTable } from '../route-table.js';
import { appOfBackend, backendName, isSafeDomain, isSafeName, mapEntries, renderConfig, renderMap, serverAddress, type HaproxyPaths, type ServerSpec } from './config.js';
import { checkConfig, HaproxyProcess, stopStale } from './process.js';
import { commandsOf, planBackend, planMap, serverKey, type Step } from './reconcile.js';
import { draining, parseBackends, parseMap, parseServersState, parseStatSessions, type ServerSessions, type ServerState } from './state.js';
import { SettleWaiters } from './settle.js';

export const DEFAULT_RECONCILE_MS = 25_000;
/** The dyno's 30 s stop grace (DESIGN.md) and 5 s margin. */
export const DEFAULT_DRAIN_MAX_MS = 35_000;
/** A pass is milliseconds and a reload well under a second; 10 s covers a restart's backoff. */
export const DEFAULT_SETTLE_TIMEOUT_MS = 10_000;
/** H12, as the dev router's upstreamTimeoutMs. */
const DEFAULT_UPSTREAM_TIMEOUT_MS = 30_000;
/** How often drained servers are looked at for their last session. */
const DRAIN_POLL_MS = 250;
/** After a failed pass (HAProxy refusing or unreachable), the next try. */
const RETRY_MS = 500;
/** Restart backoff: 250 ms doubling to 10 s; a master that served for 60 s starts over. */
const RESTART = { firstMs: 250, maxMs: 10_000, stableMs: 60_000 };
/** sun_path holds 108 bytes and HAProxy binds `<path>.<pid>.tmp` before renaming it. */
const MAX_SOCKET_PATH = 90;
const CLOSE_GRACE_MS = 5_000;

export interface HaproxyRouterOptions {
  routes: RouteTable;
  /** Config, map file and sockets live here (created 0700). */
  workDir: string;
  listen: { host: string; port: number };
  log: Logger;
  haproxyBin?: string;
  /** Host `<app>.<hostDomain>` is the app (default 'localhost', as the dev router). */
  hostDomain?: string;
  reconcileMs?: number;
  drainMaxMs?: number;
  settleTimeoutMs?: number;
  upstreamTimeoutMs?: number;
}

export interface HaproxyRouterInfo {
  running: boolean;
  masterPid: number | undefined;
  reloads: number;
  restarts: number;
  /** Servers drained and not yet removed. */
  draining: number;
}

export class HaproxyRouter {
  private readonly paths: HaproxyPaths;
  private readonly bin: string;
  private readonly hostDomain: string;
  private readonly drainMaxMs: number;
  private process: HaproxyProcess | undefined;
  private ready = false;
  private closed = false;
  /** Apps that ever had routes: the backends of the next config. */
  private readonly apps = new Set<string>();
  /** Apps with a backend in the running worker. */
  private backends = new Set<string>();
  private readonly dirty = new Set<string>();
  private fullDue = false;
  private readonly settled = new SettleWaiters();
  /** `backend/server` -> when it started draining. */
  private readonly drainingSince = new Map<string, number>();
  private pumping: Promise<void> | undefined;
  private scheduled = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  /** A restart's launch in progress: close() waits for it, so no master outlives close(). */
  private relaunching: Promise<void> | undefined;
  private readonly intervals: NodeJS.Timeout[] = [];
  private unsubscribe: (() => void) | undefined;
  private restartAttempt = 0;
  /** Set once the first start succeeded: from then on an exit means a restart. */
  private supervising = false;
  private startedAt = 0;
  private reloads = 0;
  private restarts = 0;

  constructor(private readonly options: HaproxyRouterOptions) {
    const { workDir } = options;
    this.paths = {
      config: join(workDir, 'haproxy.cfg'), map: join(workDir, 'hosts.map'),
      adminSocket: join(workDir, 'admin.sock'), masterSocket: join(workDir, 'master.sock'),
    };
    this.bin = options.haproxyBin ?? '/usr/sbin/haproxy';
    this.hostDomain = options.hostDomain ?? 'localhost';
    this.drainMaxMs = options.drainMaxMs ?? DEFAULT_DRAIN_MAX_MS;
    if (!isSafeDomain(this.hostDomain)) throw new SlipwayError('CONFIG_INVALID', `the router's host domain is not a DNS name: ${this.hostDomain}`);
    if (!serverAddress(options.listen.host, options.listen.port)) throw new SlipwayError('CONFIG_INVALID', `the HAProxy router listens on an IP address and a port 1-65535: ${options.listen.host}:${options.listen.port}`);
    const longest = Math.max(this.paths.adminSocket.length, this.paths.masterSocket.length);
    if (longest > MAX_SOCKET_PATH) throw new SlipwayError('CONFIG_INVALID', `the router's work dir is too long for its unix sockets (${longest} > ${MAX_SOCKET_PATH}): ${workDir}`);
  }

  /** Starts HAProxy with the table as it is and resolves once it serves it. */
  async start(): Promise<void> {
    const { routes, log } = this.options;
    await mkdir(this.options.workDir, { recursive: true, mode: 0o700 });
    await stopStale(this.paths, log);
    this.unsubscribe = routes.onChanged((app) => this.changed(app));
    for (const app of Object.keys(routes.snapshot())) this.apps.add(app);
    try {
      await this.launch();
    } catch (err) {
      this.unsubscribe();
      await this.process?.stop(0);
      throw err;
    }
    this.supervising = true;
    this.intervals.push(
      setInterval(() => { this.fullDue = true; this.kick(); }, this.options.reconcileMs ?? DEFAULT_RECONCILE_MS),
      setInterval(() => this.sweepDrains(), DRAIN_POLL_MS),
    );
    for (const timer of this.intervals) timer.unref();
    await this.settle();
    log.info({ listen: this.options.listen, pid: this.process?.pid, apps: this.apps.size }, 'haproxy router serving');
  }

  /** Resolves once every route change made before the call is applied in HAProxy. */
  settle(): Promise<void> {
    if (this.closed) return Promise.reject(new SlipwayError('ROUTER_UNAVAILABLE', 'the HAProxy router is closed'));
    return this.settled.wait(this.options.settleTimeoutMs ?? DEFAULT_SETTLE_TIMEOUT_MS);
  }

  info(): HaproxyRouterInfo {
    return { running: this.ready, masterPid: this.process?.pid, reloads: this.reloads, restarts: this.restarts, draining: this.drainingSince.size };
  }

  /** Stops HAProxy: a soft stop for up to graceMs (its workers finish what they serve). */
  async close(graceMs = CLOSE_GRACE_MS): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe?.();
    for (const timer of this.intervals) clearInterval(timer);
    clearTimeout(this.retryTimer);
    clearTimeout(this.restartTimer);
    this.settled.rejectAll(new SlipwayError('ROUTER_UNAVAILABLE', 'the HAProxy router closed'));
    await this.pumping;
    await this.relaunching?.catch(() => undefined);
    this.ready = false;
    await this.process?.stop(graceMs);
  }

  private changed(app: string): void {
    if (this.closed) return;
    this.settled.changed();
    this.dirty.add(app);
    if (this.options.routes.hasRoutes(app)) this.apps.add(app);
    this.kick();
  }

  /** Runs a pass soon: changes made in the same tick (a hello's snapshot) share it. */
  private kick(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.pumping || !this.ready || this.retryTimer || this.closed) return;
      this.pumping = this.pump().finally(() => {
        this.pumping = undefined;
        if (this.dirty.size > 0 || this.fullDue) this.kick();
      });
    });
  }

  private async pump(): Promise<void> {
    while (!this.closed && this.ready && (this.dirty.size > 0 || this.fullDue)) {
      const target = this.settled.seq;
      const apps = [...this.dirty];
      this.dirty.clear();
      let full = this.fullDue;
      this.fullDue = false;
      try {
        if (apps.some((app) => this.apps.has(app) && !this.backends.has(app))) {
          await this.reload();
          full = true;
        }
        if (full) await this.reconcileAll();
        else for (const app of apps) await this.applyApp(app);
        this.settled.applied(target);
      } catch (err) {
        for (const app of apps) this.dirty.add(app);
        if (full) this.fullDue = true;
        const e = asSlipwayError(err);
        this.settled.failed(e);
        this.options.log.warn({ err: e.message, code: e.code }, 'haproxy router pass failed; retrying');
        this.retryTimer = setTimeout(() => { this.retryTimer = undefined; this.kick(); }, RETRY_MS);
        this.retryTimer.unref();
        return;
      }
    }
  }

  /** The app's routes as servers; a route HAProxy could not take is logged and left out. */
  private wanted(app: string): ServerSpec[] {
    const out: ServerSpec[] = [];
    for (const r of this.options.routes.routesFor(app)) {
      if (isSafeName(r.dynoId) && serverAddress(r.host, r.port)) out.push({ name: r.dynoId, host: r.host, port: r.port });
      else this.options.log.warn({ app, dynoId: r.dynoId, host: r.host, port: r.port }, 'route not routable by haproxy (needs an IP address)');
    }
    return out;
  }

  private async applyApp(app: string): Promise<void> {
    if (!this.backends.has(app)) return; // never routed: nothing in HAProxy to change
    const admin = this.admin();
    const backend = backendName(app);
    const servers = parseServersState(await admin.show(`show servers state ${backend}`));
    const routes = this.wanted(app);
    const names = new Set(routes.map((r) => r.name));
    const sessions = servers.some((s) => !names.has(s.name) && draining(s)) ? parseStatSessions(await admin.show(`show stat ${backend} 4 -1`)) : undefined;
    await this.execute(this.plan(backend, routes, servers, sessions), servers, backend);
  }

  private async reconcileAll(reloaded = false): Promise<void> {
    const admin = this.admin();
    const present = new Set(parseBackends(await admin.show('show backend')).map(appOfBackend).filter((a): a is string => a !== undefined));
    const missing = [...this.apps].filter((app) => !present.has(app));
    if (missing.length > 0) {
      if (reloaded) throw new SlipwayError('ROUTER_COMMAND_FAILED', `haproxy has no backend for ${missing.join(', ')} after a reload`);
      await this.reload();
      return this.reconcileAll(true);
    }
    this.backends = present;
    const servers = parseServersState(await admin.show('show servers state'));
    const sessions = parseStatSessions(await admin.show('show stat -1 4 -1'));
    const steps: Step[] = [];
    for (const app of [...present].sort()) steps.push(...this.plan(backendName(app), this.wanted(app), servers, sessions));
    steps.push(...planMap(mapEntries(present, this.hostDomain), parseMap(await admin.show(`show map ${this.paths.map}`))));
    await this.execute(steps, servers);
  }

  private plan(backend: string, routes: ServerSpec[], servers: ServerState[], sessions: ReadonlyMap<string, ServerSessions> | undefined): Step[] {
    return planBackend({ backend, routes, servers, sessions, drainingSince: this.drainingSince, now: Date.now(), drainMaxMs: this.drainMaxMs });
  }

  /** Runs the steps in order and keeps the drain clock: a server drained by someone else (or
   * before a router restart) starts its clock when first seen. `backend` limits the clock's
   * pruning to one backend's servers. */
  private async execute(steps: Step[], servers: ServerState[], backend?: string): Promise<void> {
    const admin = this.admin();
    const log = this.options.log;
    for (const step of steps) {
      const key = 'server' in step ? serverKey(step.backend, step.server) : undefined;
      try {
        for (const command of commandsOf(step, this.paths.map)) await admin.run(command.line, command.ok);
      } catch (err) {
        // `del server` refuses while a killed session is still being torn down: the server
        // stays in maintenance and the next sweep removes it.
        if (step.kind === 'remove' && key !== undefined && asSlipwayError(err).code === 'ROUTER_COMMAND_FAILED') {
          log.debug({ server: key, err: asSlipwayError(err).message }, 'drained server not removed yet');
          if (!this.drainingSince.has(key)) this.drainingSince.set(key, Date.now());
          continue;
        }
        throw err;
      }
      log.info({ step: step.kind, ...stepFields(step) }, 'haproxy route change');
      if (key === undefined) continue;
      if (step.kind === 'drain') this.drainingSince.set(key, Date.now());
      else this.drainingSince.delete(key);
    }
    const present = new Set(servers.map((s) => serverKey(s.backend, s.name)));
    for (const s of servers) {
      const key = serverKey(s.backend, s.name);
      if (draining(s) && !this.drainingSince.has(key) && !steps.some((st) => 'server' in st && serverKey(st.backend, st.server) === key)) this.drainingSince.set(key, Date.now());
    }
    for (const key of [...this.drainingSince.keys()]) {
      if (backend !== undefined && !key.startsWith(`${backend}/`)) continue;
      if (!present.has(key)) this.drainingSince.delete(key);
    }
  }

  /** Drained servers are looked at again until they are removed. */
  private sweepDrains(): void {
    if (this.drainingSince.size === 0) return;
    for (const key of this.drainingSince.keys()) {
      const app = appOfBackend(key.slice(0, key.indexOf('/')));
      if (app !== undefined) this.dirty.add(app);
    }
    this.kick();
  }

  private admin(): HaproxyProcess['admin'] {
    if (!this.process || !this.ready) throw new SlipwayError('ROUTER_UNAVAILABLE', 'haproxy is not running');
    return this.process.admin;
  }

  /** The config and map file for the table as it is now: a backend for every app that had
   * routes, its current routes as servers. Returns the config's path and its apps (an app
   * that gets its first route while HAProxy loads it waits for the next reload). */
  private async writeFiles(): Promise<{ next: string; apps: Set<string> }> {
    const apps = new Set(this.apps);
    const backends = [...apps].map((app) => ({ app, servers: this.wanted(app) }));
    const config = renderConfig({
      paths: this.paths, listen: this.options.listen, hostDomain: this.hostDomain,
      upstreamTimeoutMs: this.options.upstreamTimeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS, backends,
    });
    await atomicWrite(this.paths.map, renderMap(mapEntries(apps, this.hostDomain)));
    const next = `${this.paths.config}.next`;
    await writeFile(next, config, { mode: 0o600 });
    return { next, apps };
  }

  private async reload(): Promise<void> {
    const proc = this.process;
    if (!proc || !this.ready) throw new SlipwayError('ROUTER_UNAVAILABLE', 'haproxy is not running');
    const { next, apps } = await this.writeFiles();
    await checkConfig(this.bin, next);
    await rename(next, this.paths.config);
    const table = await proc.reload();
    this.reloads++;
    this.backends = apps;
    this.drainingSince.clear(); // left out of the new config; the old worker finishes them
    this.options.log.info({ worker: table.workers[0], apps: apps.size }, 'haproxy reloaded for a new backend');
  }

  private async launch(): Promise<void> {
    const { next, apps } = await this.writeFiles();
    await rename(next, this.paths.config);
    const proc: HaproxyProcess = new HaproxyProcess({
      bin: this.bin, paths: this.paths, log: this.options.log,
      onExit: (code, signal) => this.exited(proc, code, signal),
    });
    this.process = proc;
    await proc.start();
    this.backends = apps;
    this.drainingSince.clear();
    this.startedAt = Date.now();
    this.ready = true;
    this.fullDue = true;
    this.kick();
  }

  private exited(proc: HaproxyProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (proc !== this.process || this.closed || !this.supervising) return;
    const wasReady = this.ready;
    this.ready = false;
    if (Date.now() - this.startedAt >= RESTART.stableMs) this.restartAttempt = 0;
    const delay = Math.min(RESTART.maxMs, RESTART.firstMs * 2 ** this.restartAttempt++);
    this.options.log.warn({ code, signal, pid: proc.pid, restartInMs: delay, wasReady }, 'haproxy exited; restarting it');
    this.settled.failed(new SlipwayError('ROUTER_UNAVAILABLE', `haproxy exited (${code ?? signal}) and is restarting`));
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      void this.restart();
    }, delay);
  }

  private async restart(): Promise<void> {
    if (this.closed) return;
    this.restarts++;
    try {
      this.relaunching = this.launch();
      await this.relaunching;
    } catch (err) {
      const e = asSlipwayError(err);
      this.settled.failed(e);
      this.options.log.warn({ err: e.message }, 'haproxy restart failed');
      // Go round again with a longer delay: a master that exited already scheduled it; one
      // that hangs is killed, and its exit schedules it; one that never ran (spawn failed,
      // which may emit no exit) is scheduled here.
      if (this.restartTimer !== undefined || !this.process) return;
      if (this.process.running) this.process.kill();
      else this.exited(this.process, null, null);
    } finally {
      this.relaunching = undefined;
    }
  }
}

function stepFields(step: Step): Record<string, unknown> {
  const { kind: _kind, ...fields } = step;
  return fields;
}

async function atomicWrite(path: string, text: string): Promise<void> {
  await writeFile(`${path}.next`, text, { mode: 0o600 });
  await rename(`${path}.next`, path);
}
