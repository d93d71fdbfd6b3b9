// The CLI's leg of an attached one-off dyno (`slipway run`): this terminal's stdin, stdout and
// stderr through the coordinator's rendezvous to the dyno (shared/attach.ts). It resolves with
// the dyno's exit status, which becomes the CLI's exit code.
//
// - Both directions push back: a frame for a stdout that does not drain (`slipway run ... |
//   slow-reader`) pauses the WebSocket (the coordinator then pauses the agent, the agent the
//   dyno); stdin is paused while more than ATTACH_CLI_HIGH_WATER_BYTES wait to be sent.
// - With a terminal (-t, or by default when stdin and stdout are terminals, as `heroku run`):
//   raw mode, so keys (Ctrl-C included) go to the dyno's terminal as they are typed; the
//   window size goes along at the start and at every SIGWINCH.
// - Without one: end of stdin is sent as `eof` (`echo hi | slipway run -- cat`); Ctrl-C sends
//   `stop` (SIGTERM, the grace, SIGKILL: the exit code then says how it ended); a second
//   Ctrl-C leaves at once (the agent stops the dyno when this leg goes).
import { constants } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import { WebSocket, type RawData } from 'ws';
import { ATTACH_STDERR, ATTACH_STDIN, ATTACH_STDOUT, attachFrame, rawBytes, readAttachFrame, type AttachControl } from '../shared/attach.js';
import { SlipwayError } from '../shared/errors.js';
import { MAX_FRAME_BYTES } from '../shared/protocol.js';

export const ATTACH_CLI_HIGH_WATER_BYTES = 1024 * 1024;
/** TCP + TLS + upgrade to the coordinator. */
export const ATTACH_HANDSHAKE_MS = 10_000;

export interface DynoExitStatus {
  code: number | null;
  signal: string | null;
  oomKilled: boolean;
}

export interface TerminalIn extends Readable {
  isTTY?: boolean;
  setRawMode?(raw: boolean): unknown;
}

export interface TerminalOut extends Writable {
  columns?: number;
  rows?: number;
}

export interface AttachSessionOptions {
  /** ws:// or wss:// URL of the leg (the API's URL with the answer's path). */
  url: string;
  secret: string;
  ca?: string;
  tty: boolean;
  stdin: TerminalIn;
  stdout: TerminalOut;
  stderr: Writable;
  /** Where SIGINT and SIGWINCH come from (process by default). */
  signals?: NodeJS.EventEmitter;
}

/** The shell's convention: the code, else 128 + the signal's number. */
export function exitCodeOf(exit: DynoExitStatus): number {
  if (exit.code !== null) return exit.code;
  const n = exit.signal ? constants.signals[exit.signal as keyof typeof constants.signals] : undefined;
  return n !== undefined ? 128 + n : 1;
}

/** The WebSocket URL of a rendezvous leg on the API at `apiUrl`. */
export function legUrl(apiUrl: string, path: string): string {
  const url = new URL(path, apiUrl);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}

export function attachSession(o: AttachSessionOptions): Promise<DynoExitStatus> {
  const signals = o.signals ?? process;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(o.url, {
      headers: { authorization: `Bearer ${o.secret}` },
      handshakeTimeout: ATTACH_HANDSHAKE_MS, maxPayload: MAX_FRAME_BYTES, perMessageDeflate: false,
      ...(o.ca !== undefined ? { ca: o.ca } : {}),
    });
    let exit: DynoExitStatus | undefined;
    let failure: Error | undefined;
    let interrupts = 0;
    const waiting = new Set<Writable>();
    // A stdout that went away (`slipway run ... | head`): the leg goes too, and the agent stops
    // the dyno, as a shell pipeline's SIGPIPE would.
    const gone = (err: Error): void => {
      failure ??= new SlipwayError('ATTACH_LOST', `this terminal's output failed: ${err.message}`, { cause: err });
      ws.terminate();
    };
    o.stdout.on('error', gone);
    o.stderr.on('error', gone);
    const control = (m: AttachControl): void => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(m));
    };
    const sendSize = (): void => {
      if (o.stdout.columns && o.stdout.rows) control({ type: 'resize', cols: o.stdout.columns, rows: o.stdout.rows });
    };
    // Node's own SIGWINCH listener refreshes stdout's columns and rows; read them after it.
    const resize = (): void => { setImmediate(sendSize); };
    const interrupt = (): void => {
      interrupts++;
      if (interrupts === 1) control({ type: 'stop' });
      else ws.terminate();
    };
    const onStdin = (chunk: Buffer): void => {
      if (ws.readyState !== ws.OPEN) return;
      ws.send(attachFrame(ATTACH_STDIN, chunk), { binary: true }, () => {
        if (ws.bufferedAmount < ATTACH_CLI_HIGH_WATER_BYTES / 2) o.stdin.resume();
      });
      if (ws.bufferedAmount > ATTACH_CLI_HIGH_WATER_BYTES) o.stdin.pause();
    };
    const onStdinEnd = (): void => control({ type: 'eof' });
    const cleanup = (): void => {
      o.stdin.off('data', onStdin);
      o.stdin.off('end', onStdinEnd);
      o.stdout.off('error', gone);
      o.stderr.off('error', gone);
      signals.off('SIGWINCH', resize);
      signals.off('SIGINT', interrupt);
      if (o.tty) o.stdin.setRawMode?.(false);
      // A pipe that is still open must not keep this process alive.
      o.stdin.pause();
      o.stdin.destroy();
    };

    ws.on('open', () => {
      if (o.tty) {
        o.stdin.setRawMode?.(true);
        sendSize();
        signals.on('SIGWINCH', resize);
      } else {
        signals.on('SIGINT', interrupt);
      }
      o.stdin.on('data', onStdin);
      o.stdin.on('end', onStdinEnd);
      o.stdin.resume();
    });
    ws.on('message', (data: RawData, isBinary: boolean) => {
      const bytes = rawBytes(data);
      if (isBinary) {
        const frame = readAttachFrame(bytes);
        if (!frame || frame.channel === ATTACH_STDIN) return;
        const out = frame.channel === ATTACH_STDOUT ? o.stdout : frame.channel === ATTACH_STDERR ? o.stderr : o.stdout;
        // A stdout that does not drain pauses the leg; the dyno then waits for this reader.
        // Frames of the chunk ws is parsing still come: one drain listener for them all.
        if (!out.write(frame.data) && !waiting.has(out)) {
          waiting.add(out);
          ws.pause();
          out.once('drain', () => {
            waiting.delete(out);
            if (waiting.size === 0) ws.resume();
          });
        }
        return;
      }
      try {
        const m = JSON.parse(bytes.toString('utf8')) as Partial<AttachControl>;
        if (m.type === 'exit') exit = { code: m.code ?? null, signal: m.signal ?? null, oomKilled: m.oomKilled === true };
      } catch { /* not ours: ignored */ }
    });
    ws.on('unexpected-response', (_req, res) => {
      failure = new SlipwayError('ATTACH_LOST', `the coordinator refused the attach (HTTP ${res.statusCode ?? '?'}): the run's session is gone or its secret was used`);
      res.resume();
      ws.terminate();
    });
    ws.on('error', (err) => { failure ??= new SlipwayError('ATTACH_LOST', `the attached run's connection failed: ${err.message}`, { cause: err }); });
    ws.on('close', (code, reason) => {
      cleanup();
      if (exit) return resolve(exit);
      const why = reason.toString('utf8');
      reject(failure ?? new SlipwayError('ATTACH_LOST', `the attached run ended without its exit status (close ${code}${why ? `: ${why}` : ''}); the dyno is stopped`));
    });
  });
}
