// The wire format of an attached one-off dyno (`slipway run`), spoken on the two legs of a
// rendezvous (coordinator-sdk/rendezvous.ts): the developer CLI <-> coordinator and the agent
// that runs the dyno <-> coordinator. The coordinator relays frames as they are; only the two
// ends read them. It is not the agent's link: a developer's stream must never queue behind
// log and state traffic, nor that traffic behind a 100 MB output.
//
//   binary frame  [channel byte][bytes]: 0 stdin (CLI -> dyno), 1 stdout, 2 stderr (dyno ->
//                 CLI). With a TTY, everything the terminal prints is stdout.
//   text frame    one JSON control message (AttachControl below).
//
// A rendezvous leg authenticates with a bearer secret of its own (the CLI's comes in the answer
// to POST /apps/:app/dynos, the agent's in the dyno's spec); each is good for one leg of one
// session.

export const ATTACH_STDIN = 0;
export const ATTACH_STDOUT = 1;
export const ATTACH_STDERR = 2;
export type AttachChannel = typeof ATTACH_STDIN | typeof ATTACH_STDOUT | typeof ATTACH_STDERR;

/** The path both legs dial, followed by the session id. */
export const RENDEZVOUS_PATH = '/v1/rendezvous/';

export type AttachControl =
  /** CLI -> dyno: the terminal's new size (with a TTY). */
  | { type: 'resize'; cols: number; rows: number }
  /** CLI -> dyno: stdin ended (`echo hi | slipway run -- cat`). */
  | { type: 'eof' }
  /** CLI -> dyno: Ctrl-C: SIGTERM to every process of the dyno, the grace, then SIGKILL. */
  | { type: 'stop' }
  /** Dyno -> CLI: the command ended; the agent closes the leg after it. */
  | { type: 'exit'; code: number | null; signal: string | null; oomKilled: boolean };

/** WebSocket close codes of a rendezvous leg (4000-4999 are the application's). */
export const ATTACH_CLOSE = {
  /** The other leg went away (the CLI's connection was lost: the agent stops the dyno after
   * its grace). */
  peerGone: 4001,
  /** The other leg did not come within the bound. */
  peerMissing: 4002,
  /** The session ended at its longest life. */
  expired: 4003,
} as const;

/** The bytes of a message as `ws` delivers it (a Buffer, fragments, or an ArrayBuffer). */
export function rawBytes(data: Buffer | ArrayBuffer | Buffer[]): Buffer {
  return Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
}

/** A binary frame of `channel`. */
export function attachFrame(channel: AttachChannel, data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(data.length + 1);
  out[0] = channel;
  out.set(data, 1);
  return out;
}

/** A binary frame's channel and bytes; undefined for an empty frame or an unknown channel. */
export function readAttachFrame(frame: Buffer): { channel: AttachChannel; data: Buffer } | undefined {
  if (frame.length === 0) return undefined;
  const channel = frame[0];
  if (channel !== ATTACH_STDIN && channel !== ATTACH_STDOUT && channel !== ATTACH_STDERR) return undefined;
  return { channel, data: frame.subarray(1) };
}
