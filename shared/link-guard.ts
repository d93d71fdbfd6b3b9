// Limits one side of the link enforces on what its peer sends. Two are ws's own, set by
// LINK_WS_LIMITS on both sides' sockets (agent/link/transport.ts, the SDK's agent-server.ts):
// - a payload bound (maxPayload = MAX_FRAME_BYTES): ws closes with 1009.
// - a fragment bound (maxFragments = MAX_FRAGMENTS): ws assembles a fragmented message in
//   memory, one Buffer per fragment; a peer sending a 1 MiB message in 1-byte fragments would
//   make about a million Buffer objects (~100 MB). ws's receiver (lib/receiver.js, 8.23)
//   refuses fragment MAX_FRAGMENTS + 1 of a message with a RangeError of code
//   WS_ERR_TOO_MANY_BUFFERED_PARTS and closes with 1008 and no reason; the guard hears that
//   error and reports `fragment_flood`. ws uses the same code for its bound on buffered TCP
//   chunks (maxBufferedChunks, default 262,144), also a flood of parts held in memory.
// The guard adds:
// - a message budget (token bucket): a peer that sends more than `perSecond` messages a
//   second, sustained beyond a burst, is flooding; the link closes with 1008.
// - a wire bound: bytes received without completing a message (control frames aside) may
//   not exceed MAX_FRAME_BYTES plus headroom.
// Both sides close the same way; the agent then redials with backoff.
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { CLOSE_POLICY_VIOLATION } from './link-close.js';
import { MAX_FRAME_BYTES } from './protocol.js';

/** No coordinator or agent sends more than a few hundred messages a second on one link:
 * 100 dynos restarting at once make ~300 events. */
export const MESSAGES_PER_SECOND = 1_000;
export const MESSAGE_BURST = 5_000;
/** The agent and the coordinator send every message in one frame; 64 leaves room for
 * another implementation's fragmenting without inviting a fragment flood. */
export const MAX_FRAGMENTS = 64;
/** ws's options on every link socket, both sides: ws enforces these bounds itself. */
export const LINK_WS_LIMITS = { maxPayload: MAX_FRAME_BYTES, maxFragments: MAX_FRAGMENTS } as const;
/** The code of ws's error when a peer breaks maxFragments (or maxBufferedChunks). */
export const WS_TOO_MANY_PARTS = 'WS_ERR_TOO_MANY_BUFFERED_PARTS';
/** Wire bytes for one message: its payload bound plus frame headers and control frames. */
export const MAX_WIRE_BYTES_PER_MESSAGE = MAX_FRAME_BYTES + 64 * 1024;
/** A peer that does not answer a policy close within this is cut. */
const CLOSE_GRACE_MS = 1_000;

export type GuardViolation = 'message_flood' | 'fragment_flood' | 'wire_flood';

/** Token bucket: `take()` is false once more than `burst` messages came faster than `perSecond`. */
export class MessageBudget {
  private tokens: number;
  private last: number;

  constructor(
    private readonly perSecond = MESSAGES_PER_SECOND,
    private readonly burst = MESSAGE_BURST,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = burst;
    this.last = now();
  }

  take(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.perSecond);
    this.last = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/**
 * Watches `ws` (whose raw TCP socket is `socket`, and which was opened with LINK_WS_LIMITS).
 * `admit()` is called once per received message before it is handled; false means the link
 * was closed for flooding and the message must be dropped. Returns the guard.
 */
export function guardLink(ws: WebSocket, socket: Socket, onViolation: (kind: GuardViolation, detail: string) => void): { admit: () => boolean } {
  const budget = new MessageBudget();
  let wireBytes = 0;
  let violated = false;
  const violate = (kind: GuardViolation, detail: string) => {
    if (violated) return;
    violated = true;
    socket.off('data', onData);
    onViolation(kind, detail);
    ws.close(CLOSE_POLICY_VIOLATION, kind);
    const cut = setTimeout(() => ws.terminate(), CLOSE_GRACE_MS);
    cut.unref();
    ws.once('close', () => clearTimeout(cut));
  };
  const onData = (chunk: Buffer) => {
    wireBytes += chunk.length;
    if (wireBytes > MAX_WIRE_BYTES_PER_MESSAGE) violate('wire_flood', `${wireBytes} bytes on the wire without a complete message`);
  };
  socket.on('data', onData);
  // ws has already begun its own close (1008) when it emits this; violate() only reports it
  // and bounds the closing handshake.
  ws.on('error', (err: Error & { code?: string }) => {
    if (err.code === WS_TOO_MANY_PARTS) violate('fragment_flood', `a message in more than ${MAX_FRAGMENTS} fragments (ws: ${err.message})`);
  });
  const reset = () => { wireBytes = 0; };
  ws.on('ping', reset);
  ws.on('pong', reset);
  ws.once('close', () => socket.off('data', onData));
  return {
    admit() {
      wireBytes = 0;
      if (violated) return false;
      if (budget.take()) return true;
      violate('message_flood', `more than ${MESSAGES_PER_SECOND} messages a second`);
      return false;
    },
  };
}
