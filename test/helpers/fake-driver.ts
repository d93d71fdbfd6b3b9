// A stand-in runtime driver for the dyno owner's and the manager's unit tests: it records
// starts, signals and destroys, lets the test end a container (exit()), and for web dynos
// listens on $PORT with a real TCP server so the readiness probe sees a real port. The stop's
// grace (R12) runs on the clock it is given (a fake one: test/helpers/stepped-clock.ts), real
// by default. Real runtimes are exercised in test/integration.
import { createServer, type Server } from 'node:net';
import { realClock, type Clock } from '../../agent/lib/clock.js';
import { PassThrough } from 'node:stream';
import type { ContainerSpec, DynoAttach, DynoExit, DynoHandle, RecoveredDyno, RuntimeDriver } from '../../agent/runtime/driver.js';
import { SlipwayError } from '../../shared/errors.js';

/** The fake's streams of an attached dyno: the test writes what the dyno prints to `stdout` and
 * `stderr`, reads what reached its stdin from `stdinReceived`, and sees resizes. */
export interface FakeAttach extends DynoAttach {
  stdin: PassThrough;
  stdout: PassThrough;
  stderr: PassThrough;
  stdinReceived: Buffer[];
  stdinEnded: boolean;
  resizes: { cols: number; rows: number }[];
}

export class FakeDriver implements RuntimeDriver {
  constructor(private readonly clock: Clock = realClock) {}

  // A stand-in for any driver; it borrows runc's name only to satisfy the type.
  readonly name = 'runc' as const;
  started: ContainerSpec[] = [];
  destroyed: string[] = [];
  signals: string[] = [];
  listen = true;
  ignoreTerm = false;
  servers: Server[] = [];
  private exits = new Map<string, (e: DynoExit) => void>();
  /** Streams of dynos started with ContainerSpec.stdio, by dyno id. */
  readonly attached = new Map<string, FakeAttach>();
  private readonly attachTaken = new Set<string>();
  private waits = new Map<string, Promise<DynoExit>>();

  async start(spec: ContainerSpec): Promise<DynoHandle> {
    this.started.push(spec);
    const id = spec.dynoId;
    this.waits.set(id, new Promise((resolve) => this.exits.set(id, resolve)));
    if (spec.stdio) {
      const io: FakeAttach = {
        stdin: new PassThrough(), stdout: new PassThrough(), stderr: new PassThrough(), stdinReceived: [], stdinEnded: false, resizes: [],
        resize: async (cols, rows) => { io.resizes.push({ cols, rows }); },
        close: () => undefined,
      };
      io.stdin.on('data', (b: Buffer) => io.stdinReceived.push(b));
      io.stdin.on('end', () => { io.stdinEnded = true; });
      this.attached.set(id, io);
    }
    const port = spec.env.find((e) => e.startsWith('PORT='))?.slice(5);
    if (port && this.listen) await this.listenOn(Number(port));
    return { driver: 'runc', dynoId: id, containerId: id, dir: spec.dir, startedAt: new Date().toISOString() };
  }
  exit(id: string, e: DynoExit) {
    const io = this.attached.get(id);
    if (io) {
      if (!io.stdout.writableEnded) io.stdout.end();
      if (!io.stderr.writableEnded) io.stderr.end();
    }
    this.exits.get(id)?.(e);
  }
  attach(h: DynoHandle): DynoAttach {
    const io = this.attached.get(h.dynoId);
    if (!io || this.attachTaken.has(h.dynoId)) throw new SlipwayError('RUNTIME_ATTACH_UNAVAILABLE', `dyno ${h.dynoId} has no streams to attach`);
    this.attachTaken.add(h.dynoId);
    return io;
  }
  /** A container an earlier agent process started, as recover() would find it: running (for a
   * web dyno listening on `port` unless `listen` is off), or exited meanwhile with `exited`. */
  async found(id: string, o: { port?: number; exited?: DynoExit } = {}): Promise<RecoveredDyno> {
    this.waits.set(id, new Promise((resolve) => this.exits.set(id, resolve)));
    if (o.exited) this.exit(id, o.exited);
    else if (o.port !== undefined && this.listen) await this.listenOn(o.port);
    return { handle: { driver: 'runc', dynoId: id, containerId: id, dir: `/dynos/${id}`, startedAt: new Date().toISOString() }, running: !o.exited };
  }
  /** A real TCP listener on `port` (closed by close()), as a dyno that bound $PORT. */
  async listenOn(port: number) {
    const srv = createServer((s) => s.destroy());
    await new Promise<void>((r) => srv.listen(port, '127.0.0.1', r));
    this.servers.push(srv);
  }
  wait(h: DynoHandle) { return this.waits.get(h.containerId)!; }
  async signal(h: DynoHandle, sig: 'SIGTERM' | 'SIGKILL') {
    this.signals.push(sig);
    if (sig === 'SIGKILL') this.exit(h.containerId, { code: 137, signal: 'SIGKILL', oomKilled: false });
    else if (!this.ignoreTerm) this.exit(h.containerId, { code: 143, signal: 'SIGTERM', oomKilled: false });
  }
  async stop(h: DynoHandle, graceMs: number) {
    await this.signal(h, 'SIGTERM');
    let timer: unknown;
    const grace = new Promise<undefined>((r) => { timer = this.clock.setTimeout(() => r(undefined), graceMs); });
    const inGrace = await Promise.race([this.wait(h), grace]);
    this.clock.clearTimeout(timer);
    if (inGrace) return { forced: false, exit: inGrace };
    await this.signal(h, 'SIGKILL');
    return { forced: true, exit: await this.wait(h) };
  }
  async destroy(h: DynoHandle) { this.destroyed.push(h.containerId); }
  async inspect() { return { status: 'running' as const }; }
  async recover() { return undefined; }
  memory: { workingSetBytes: number; swapBytes: number } | undefined;
  async stats() {
    return this.memory ? { memoryUsageBytes: this.memory.workingSetBytes, rssBytes: this.memory.workingSetBytes, cpuUsageNs: 0, pids: 1, oomKills: 0, ...this.memory } : undefined;
  }
  log(h: DynoHandle) { return { path: `${h.dir}/log`, format: 'k8s-file' as const }; }
  close() { for (const s of this.servers) s.close(); }
}
