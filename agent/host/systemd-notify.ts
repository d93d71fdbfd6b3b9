// The agent's side of systemd's notify protocol (sd_notify(3)): READY=1 once the local daemon
// serves, STATUS= lines, EXTEND_TIMEOUT_USEC= while re-adoption runs long, WATCHDOG=1 pings
// (agent/host/watchdog.ts decides when) and STOPPING=1 on shutdown. The unit is Type=notify
// with NotifyAccess=main (systemd/slipway-agent.service).
//
// Sent by spawning /usr/bin/systemd-notify: Node has no unix datagram sockets, and as root
// systemd-notify sends its datagram with the credentials of its parent (us, the main pid), so
// NotifyAccess=main accepts it (measured under systemd 252 in the VM suite, test/vm/). The
// maintained native alternative (unix-dgram) would add a compiled addon for a message a few
// times a minute; sd-notify is stale. `--no-block` skips the barrier that waits for the
// manager to read the message: the sender's pid is ours, alive, so attribution does not race.
//
// One child at a time: what is asked for while one runs is merged into the next message (the
// latest STATUS= wins, READY/STOPPING are kept), so a slow spawn never builds a queue.
import { spawn } from 'node:child_process';
import type { Logger } from '../../shared/log.js';

/** Every variable systemd hands a service: the agent takes them out of its own environment
 * at start-up, so no runtime it spawns inherits them. runc acts on NOTIFY_SOCKET (it would
 * forward the container's readiness to systemd as ours), and LISTEN_FDS would hand our
 * sockets to whoever reads it. */
const SYSTEMD_ENV = /^(NOTIFY_SOCKET|WATCHDOG_USEC|WATCHDOG_PID|LISTEN_FDS|LISTEN_PID|LISTEN_FDNAMES)$/;

/** What systemd told this process, taken out of `env` (process.env by default). */
export interface SystemdEnvironment {
  notifySocket?: string;
  /** Set only when WATCHDOG_PID names this process (or is absent), as sd_watchdog_enabled(3). */
  watchdogUsec?: number;
}

export function takeSystemdEnvironment(env: NodeJS.ProcessEnv = process.env, pid = process.pid): SystemdEnvironment {
  const out: SystemdEnvironment = {};
  if (env.NOTIFY_SOCKET) out.notifySocket = env.NOTIFY_SOCKET;
  const usec = Number(env.WATCHDOG_USEC);
  const forUs = env.WATCHDOG_PID === undefined || Number(env.WATCHDOG_PID) === pid;
  if (Number.isSafeInteger(usec) && usec > 0 && forUs) out.watchdogUsec = usec;
  for (const k of Object.keys(env)) if (SYSTEMD_ENV.test(k)) delete env[k];
  return out;
}

/** Bound on one systemd-notify run: it only sends a datagram (with --no-block); a wedged
 * child is killed rather than holding up the next message. */
const NOTIFY_TIMEOUT_MS = 5000;

/** Fields of one notification, e.g. { READY: '1', STATUS: 'dynos: 3 up' }. */
export type NotifyFields = Record<string, string>;

export interface SystemdNotifierOptions {
  socket?: string;
  log: Logger;
  /** The binary; tests point it elsewhere only to show a failing send is survived. */
  binary?: string;
}

export class SystemdNotifier {
  private running = false;
  private pending: NotifyFields | undefined;
  private idle: (() => void)[] = [];
  private failures = 0;
  /** Messages systemd-notify sent (exit 0), for /v1/status and tests. */
  sent = 0;

  constructor(private readonly o: SystemdNotifierOptions) {}

  /** False outside a notify unit (no NOTIFY_SOCKET): every call is then a no-op. */
  get enabled(): boolean {
    return this.o.socket !== undefined;
  }

  notify(fields: NotifyFields): void {
    if (!this.enabled) return;
    this.pending = { ...this.pending, ...fields };
    if (!this.running) this.flush();
  }

  /** Resolves once nothing is pending or running (shutdown: STOPPING=1 should leave first). */
  settled(): Promise<void> {
    if (!this.running && !this.pending) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private flush(): void {
    const fields = this.pending;
    this.pending = undefined;
    if (!fields) {
      for (const f of this.idle.splice(0)) f();
      return;
    }
    this.running = true;
    // Values are single lines (sd_notify's format is newline-separated assignments).
    const args = ['--no-block', ...Object.entries(fields).map(([k, v]) => `${k}=${v.replace(/\n/g, ' ')}`)];
    const child = spawn(this.o.binary ?? '/usr/bin/systemd-notify', args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      // Only the socket: the rest of our environment is not the notifier's business.
      env: { NOTIFY_SOCKET: this.o.socket!, PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
    });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => { if (stderr.length < 2000) stderr += b.toString('utf8'); });
    const timer = setTimeout(() => child.kill('SIGKILL'), NOTIFY_TIMEOUT_MS);
    timer.unref();
    let done = false;
    const finish = (ok: boolean, why: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (ok) {
        this.sent += 1;
        if (this.failures > 0) this.o.log.info({ failures: this.failures }, 'systemd notifications sent again');
        this.failures = 0;
      } else {
        // Logged once per streak: a missing binary must not fill the journal every second.
        if (this.failures === 0) this.o.log.warn({ fields: Object.keys(fields), why }, 'systemd notification failed');
        this.failures += 1;
      }
      this.running = false;
      this.flush();
    };
    child.on('error', (err) => finish(false, err.message));
    child.on('close', (code, signal) => finish(code === 0, `systemd-notify exited ${signal ?? code}: ${stderr.trim().slice(0, 300)}`));
  }
}
