// Limits one side of the link enforces on what its peer sends, beyond ws's maxPayload
// (which closes with 1009 by itself):
// - a message budget (token bucket): a peer that sends more than `perSecond` messages a
//   second, sustained beyond a burst, is flooding; the link closes with 1008.
// - a fragment bound: ws assembles a fragmented message in memory, one Buffer per fragment,
//   and only bounds the total payload. A peer sending a 1 MiB message in 1-byte fragments
//   would make about a million Buffer objects (~100 MB). MAX_FRAGMENTS fragments of one
//   message close the link with 1008. ws keeps no public count, so the guard reads the
//   receiver's fragment list; link-guard.test.ts fails if a ws upgrade moves it.
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

interface ReceiverInternals {
  _fragments?: unknown;
}

/**
 * Watches `ws` (whose raw TCP socket is `socket`). `admit()` is called once per received
 * message before it is handled; false means the link was closed for flooding and the message
 * must be dropped. Returns the guard.
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
    if (wireBytes > MAX_WIRE_BYTES_PER_MESSAGE) return violate('wire_flood', `${wireBytes} bytes on the wire without a complete message`);
    const fragments = ((ws as unknown as { _receiver?: ReceiverInternals })._receiver?._fragments);
    if (Array.isArray(fragments) && fragments.length > MAX_FRAGMENTS) violate('fragment_flood', `a message in more than ${MAX_FRAGMENTS} fragments`);
  };
  // Runs after ws's own 'data' listener (registered first), so the fragment list is current.
  socket.on('data', onData);
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
