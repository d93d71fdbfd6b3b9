// The agent's end of an attached one-off dyno (`slipway run`, Heroku's `heroku run`): the
// dyno's stdio (the driver's attach(), agent/runtime/driver.ts) streamed over the agent's leg
// of the coordinator's rendezvous (shared/attach.ts, dialled by agent/link/rendezvous-dial.ts),
// with the CLI on the other leg.
//
// - Output: stdout and stderr as channel frames. While more than ATTACH_HIGH_WATER_BYTES wait
//   in the WebSocket for a slow network or CLI, the dyno's streams are paused, so the dyno
//   itself blocks on its writes (the runtime's pipes push back): nothing is dropped and the
//   agent holds at most that much, whatever the dyno prints.
// - Input: stdin frames to the dyno's stdin (the WebSocket is paused while the dyno does not
//   read); `eof` closes it; `resize` changes the terminal; `stop` (Ctrl-C) stops the dyno.
// - The end: once the dyno exited and its output was sent, an `exit` message with its status,
//   then a normal close (1000): the CLI exits with that code.
// - A lost leg (the CLI went away, the coordinator stopped, the leg never came within its
//   bound) stops the dyno: SIGTERM, the one-off grace, SIGKILL. Nobody can attach again (a
//   leg's secret is good once), and a one-off without its terminal is a process nobody
//   watches. A dyno re-adopted after an agent restart lost its streams with the old process:
//   it is stopped the same way.
// The dyno's state is the owner's (dyno.ts): the hook signals the container, and its exit is
// reported like any one-off's (crashed with its exit code; the coordinator then forgets it).
import type { RawData, WebSocket } from 'ws';
import { ATTACH_STDERR, ATTACH_STDIN, ATTACH_STDOUT, attachFrame, rawBytes, readAttachFrame, type AttachChannel, type AttachControl } from '../../shared/attach.js';
import type { AgentFeature, DynoAttachSpec } from '../../shared/protocol.js';
import type { DynoAttach, DynoExit, RuntimeDriver } from '../runtime/driver.js';
import type { RendezvousDialer } from '../link/rendezvous-dial.js';
import { Backoff } from '../link/backoff.js';
import { raceTimeout } from '../runtime/common.js';
import type { ContainerRun, DynoControl, DynoHook } from './hooks.js';

/** What the agent's leg may hold for a slow CLI before the dyno's output is paused. */
export const ATTACH_HIGH_WATER_BYTES = 1024 * 1024;
/** Ctrl-C, or a lost leg: SIGTERM, then SIGKILL after this (shorter than a formation's 30 s:
 * somebody is waiting at a terminal). */
export const ONE_OFF_STOP_GRACE_MS = 10_000;
/** How long the leg is dialled again after network errors before the dyno is given up (the
 * coordinator keeps a session open 5 min for its second leg). */
export const ATTACH_DIAL_WINDOW_MS = 60_000;
/** After the dyno exited, how long its output may take to end (a process that gave its stdout
 * to a child that outlived it) before the exit is sent anyway. */
export const ATTACH_DRAIN_AFTER_EXIT_MS = 5_000;
/** predestroy waits at most this for the exit message to leave (a stalled CLI). */
export const ATTACH_FINISH_MS = 30_000;

/** What the agent announces in its identity (shared/protocol.ts AGENT_FEATURES): every runtime
 * attaches stdio; LXC through conmon cannot hold a terminal (its shim cannot pass a pty). */
export function attachFeatures(runtime: string): AgentFeature[] {
  return runtime === 'lxc' ? ['attach'] : ['attach', 'attach-tty'];
}

/** Redials of the leg after network errors: from 250 ms, at most 5 s apart. */
const DIAL_BACKOFF = { initialMs: 250, maxMs: 5_000 };

export class AttachHook implements DynoHook {
  readonly name = 'attach';
  private io: DynoAttach | undefined;
  private ws: WebSocket | undefined;
  private finished: Promise<void> = Promise.resolve();
  private stopAsked = false;
  /** The dyno's stdin is full: the leg is paused until it drains. */
  private stdinFull = false;

  constructor(
    private readonly dyno: DynoControl,
    private readonly driver: RuntimeDriver,
    private readonly dialer: RendezvousDialer,
  ) {}

  poststart(run: ContainerRun): void {
    const attach = this.dyno.spec.attach;
    if (!attach || !run.handle) return;
    if (run.adopted) {
      this.terminate(run, 'its attached session ended with the agent process that started it');
      return;
    }
    let io: DynoAttach;
    try {
      io = this.driver.attach(run.handle);
    } catch (err) {
      this.dyno.log.error({ err }, 'attach: the dyno has no streams');
      this.terminate(run, 'its streams could not be attached');
      return;
    }
    this.io = io;
    this.finished = this.session(run, io, attach).catch((err: unknown) => {
      this.dyno.log.error({ err }, 'attach: the session failed');
      this.terminate(run, 'its attached session failed');
    });
  }

  async predestroy(): Promise<void> {
    // The exit message leaves before the streams go with the container.
    await raceTimeout(this.finished, ATTACH_FINISH_MS);
    this.io?.close();
    if (this.ws && this.ws.readyState !== this.ws.CLOSED) this.ws.terminate();
  }

  retired(): Promise<void> {
    this.io?.close();
    return Promise.resolve();
  }

  private async session(run: ContainerRun, io: DynoAttach, attach: DynoAttachSpec): Promise<void> {
    const ws = await this.connect(run, attach, (leg, data, isBinary) => this.fromCli(run, io, leg, rawBytes(data), isBinary));
    if (!ws) return;
    this.ws = ws;
    const handle = run.handle!;
    let exitSent = false;
    ws.on('close', (code, reason) => {
      // Whatever the dyno prints from now on is dropped (the data handler sends only on an open
      // leg): a dyno in its SIGTERM grace must not block on a full pipe.
      io.stdout.resume();
      io.stderr.resume();
      if (exitSent) return;
      this.dyno.log.info({ code, reason: reason.toString('utf8').slice(0, 120) }, 'attach: the rendezvous leg closed before the dyno ended');
      this.terminate(run, `its attached session ended (${code})`);
    });

    // Output, paused above the high water and resumed below half of it.
    const paused = { now: false };
    const resume = (): void => {
      if (!paused.now || ws.bufferedAmount > ATTACH_HIGH_WATER_BYTES / 2 || ws.readyState !== ws.OPEN) return;
      paused.now = false;
      io.stdout.resume();
      io.stderr.resume();
    };
    const pump = (stream: NodeJS.ReadableStream, channel: AttachChannel): Promise<void> => new Promise((resolve) => {
      stream.on('data', (chunk: Buffer) => {
        if (ws.readyState !== ws.OPEN) return;
        ws.send(attachFrame(channel, chunk), { binary: true }, resume);
        if (ws.bufferedAmount > ATTACH_HIGH_WATER_BYTES && !paused.now) {
          paused.now = true;
          io.stdout.pause();
          io.stderr.pause();
        }
      });
      stream.once('end', () => resolve());
      stream.once('close', () => resolve());
      stream.once('error', (err: Error) => {
        this.dyno.log.warn({ err, channel }, 'attach: reading the dyno failed');
        resolve();
      });
    });
    const output = Promise.all([pump(io.stdout, ATTACH_STDOUT), pump(io.stderr, ATTACH_STDERR)]);
    const exit: DynoExit = await this.driver.wait(handle);
    await raceTimeout(output, ATTACH_DRAIN_AFTER_EXIT_MS);
    if (ws.readyState !== ws.OPEN) return;
    exitSent = true;
    const message: AttachControl = { type: 'exit', code: exit.code, signal: exit.signal, oomKilled: exit.oomKilled };
    await new Promise<void>((resolve) => ws.send(JSON.stringify(message), () => resolve()));
    ws.close(1000, 'the dyno exited');
  }

  /** Dials the leg, again after network errors until ATTACH_DIAL_WINDOW_MS; a refusal (the
   * session is gone, the secret was used) is final. `onMessage` is listening from the dial on:
   * the CLI's first frames may come in the same packet as the upgrade's answer. undefined: the
   * dyno is being stopped, or was given up. A dyno that already exited is still dialled for:
   * its output and exit status wait for the leg. */
  private async connect(run: ContainerRun, attach: DynoAttachSpec, onMessage: (ws: WebSocket, data: RawData, isBinary: boolean) => void): Promise<WebSocket | undefined> {
    const until = Date.now() + ATTACH_DIAL_WINDOW_MS;
    const backoff = new Backoff(DIAL_BACKOFF.initialMs, DIAL_BACKOFF.maxMs);
    for (let attempt = 0; ; attempt++) {
      if (this.stopAsked || this.dyno.desired === 'down') return undefined;
      let refused: number | undefined;
      const outcome = await new Promise<{ ws: WebSocket } | { err: Error }>((resolve) => {
        const ws = this.dialer.dial(attach.session, attach.secret);
        ws.on('message', (data: RawData, isBinary: boolean) => onMessage(ws, data, isBinary));
        ws.once('unexpected-response', (_req, res) => {
          refused = res.statusCode;
          res.resume();
          ws.terminate();
        });
        ws.once('open', () => resolve({ ws }));
        ws.once('error', (err) => resolve({ err }));
      });
      if ('ws' in outcome) {
        outcome.ws.on('error', (err) => this.dyno.log.warn({ err }, 'attach: the rendezvous leg failed'));
        return outcome.ws;
      }
      if (refused !== undefined || Date.now() >= until) {
        this.dyno.log.warn({ err: outcome.err, status: refused, attempt }, 'attach: the rendezvous cannot be reached');
        this.terminate(run, refused !== undefined ? `the coordinator refused its attached session (HTTP ${refused})` : 'its attached session could not be reached');
        return undefined;
      }
      await new Promise((r) => setTimeout(r, backoff.next()));
    }
  }

  private fromCli(run: ContainerRun, io: DynoAttach, ws: WebSocket, data: Buffer, isBinary: boolean): void {
    if (isBinary) {
      const frame = readAttachFrame(data);
      if (frame?.channel !== ATTACH_STDIN || io.stdin.writableEnded || io.stdin.destroyed) return;
      // The dyno does not read: stop reading the CLI (TCP pushes back to it) until it does.
      // Frames of the chunk ws is parsing still come: one drain listener for them all.
      if (!io.stdin.write(frame.data) && !this.stdinFull) {
        this.stdinFull = true;
        ws.pause();
        io.stdin.once('drain', () => {
          this.stdinFull = false;
          ws.resume();
        });
      }
      return;
    }
    let control: Partial<AttachControl> & { cols?: unknown; rows?: unknown };
    try {
      control = JSON.parse(data.toString('utf8')) as typeof control;
    } catch {
      return;
    }
    if (control.type === 'eof') {
      if (!io.stdin.writableEnded) io.stdin.end();
    } else if (control.type === 'resize') {
      const { cols, rows } = control;
      if (isSize(cols) && isSize(rows)) io.resize(cols, rows).catch((err: unknown) => this.dyno.log.warn({ err }, 'attach: resizing the terminal failed'));
    } else if (control.type === 'stop') {
      this.terminate(run, 'the developer stopped it');
    }
  }

  /** SIGTERM to every process of the dyno, SIGKILL after the grace unless it exited. */
  private terminate(run: ContainerRun, why: string): void {
    if (this.stopAsked || !run.handle || run.signal.aborted) return;
    this.stopAsked = true;
    const handle = run.handle;
    this.dyno.system(`Stopping one-off dyno: ${why}`);
    const { clock } = this.dyno;
    const timer = clock.setTimeout(() => {
      if (!run.signal.aborted) void this.driver.signal(handle, 'SIGKILL').catch((err: unknown) => this.dyno.log.error({ err }, 'attach: SIGKILL failed'));
    }, ONE_OFF_STOP_GRACE_MS);
    run.signal.addEventListener('abort', () => clock.clearTimeout(timer), { once: true });
    void this.driver.signal(handle, 'SIGTERM').catch((err: unknown) => this.dyno.log.error({ err }, 'attach: SIGTERM failed'));
  }
}

function isSize(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 10_000;
}

