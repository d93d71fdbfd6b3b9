// One agent's WebSocket connection, server side: every frame goes through the link guard
// (flood and fragment limits, shared/link-guard.ts) and the protocol's decoder; nothing but
// a hello is accepted before the hello; pings with a deadline find a dead link. A bad frame
// is answered with an `error` message and counted; it never closes the link and never throws.
// A flood does close it (1008), an oversize frame too (1009, by ws).
import { rawBytes } from '../attach.js';
import type { Socket } from 'node:net';
import type { RawData, WebSocket } from 'ws';
import { CLOSE_NO_HELLO } from '../link-close.js';
import { guardLink } from '../link-guard.js';
import { decodeAgentMessage, type AgentMessage, type CoordinatorMessage, type Decoded } from '../protocol.js';
import type { SdkLogger } from './logger.js';

/** A link that missed this many pongs in a row is dead: with a 15 s ping period an agent
 * that vanished without a FIN is noticed within 45 s. */
export const MAX_MISSED_PONGS = 2;
/** An authenticated link must say hello within this (the agent sends it right after the
 * upgrade; its own wait for the welcome is 10 s too). */
export const HELLO_TIMEOUT_MS = 10_000;

export interface AgentLinkDeps {
  log: SdkLogger;
  pingIntervalMs: number;
  helloTimeoutMs?: number;
  /** Every decoded message; must not throw (the server catches handler errors). */
  onMessage: (link: AgentLink, message: AgentMessage) => void;
  /** A frame that failed decoding (its error code), or a flood. */
  onInvalid: (link: AgentLink, code: string) => void;
}

export class AgentLink {
  /** Set once the agent's hello was accepted. */
  agentId: string | undefined;
  private missedPongs = 0;
  private readonly pingTimer: NodeJS.Timeout;
  private readonly helloTimer: NodeJS.Timeout;

  constructor(
    private readonly socket: WebSocket,
    rawSocket: Socket,
    /** Serial number of the connection, unique per server. */
    readonly serial: number,
    readonly remoteAddress: string | undefined,
    private readonly deps: AgentLinkDeps,
  ) {
    const guard = guardLink(socket, rawSocket, (kind, detail) => {
      deps.onInvalid(this, kind);
      deps.log.warn({ serial, agentId: this.agentId, kind }, `closing an agent link that broke its limits: ${detail}`);
    });
    socket.on('message', (data, isBinary) => {
      if (guard.admit()) this.onFrame(data, isBinary);
    });
    socket.on('pong', () => {
      this.missedPongs = 0;
    });
    socket.on('error', (err) => deps.log.warn({ serial, agentId: this.agentId, err }, 'agent link error'));
    socket.on('close', () => {
      clearInterval(this.pingTimer);
      clearTimeout(this.helloTimer);
    });
    this.pingTimer = setInterval(() => this.ping(), deps.pingIntervalMs);
    this.helloTimer = setTimeout(() => {
      if (this.agentId !== undefined) return;
      deps.log.warn({ serial }, 'agent link said no hello in time; closing it');
      socket.close(CLOSE_NO_HELLO, 'no hello');
    }, deps.helloTimeoutMs ?? HELLO_TIMEOUT_MS);
  }

  get open(): boolean {
    return this.socket.readyState === this.socket.OPEN;
  }

  /** Bytes queued on the socket and not yet written (a slow or stuck agent). */
  get bufferedAmount(): number {
    return this.socket.bufferedAmount;
  }

  send(message: CoordinatorMessage): void {
    if (this.socket.readyState !== this.socket.OPEN) return;
    this.socket.send(JSON.stringify(message));
  }

  close(code: number, reason: string): void {
    this.socket.close(code, reason);
  }

  onClose(listener: (code: number, reason: string) => void): void {
    this.socket.on('close', (code, reason) => listener(code, reason.toString('utf8')));
  }

  /** Closes with a handshake, cutting the socket if the agent does not answer in `graceMs`. */
  closeAndWait(code: number, reason: string, graceMs: number): Promise<void> {
    if (this.socket.readyState === this.socket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.socket.terminate(), graceMs);
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.socket.close(code, reason);
    });
  }

  private ping(): void {
    if (this.missedPongs >= MAX_MISSED_PONGS) {
      this.deps.log.warn({ serial: this.serial, agentId: this.agentId }, 'agent link missed two pongs; terminating it');
      this.socket.terminate();
      return;
    }
    this.missedPongs++;
    this.socket.ping();
  }

  private onFrame(data: RawData, isBinary: boolean): void {
    const raw = rawBytes(data);
    // One message per text frame (shared/protocol.ts); the agent refuses binary frames alike.
    const decoded: Decoded<AgentMessage> = isBinary
      ? { ok: false, error: { code: 'PROTOCOL_SCHEMA_VIOLATION', message: 'binary frames are not part of the protocol' } }
      : decodeAgentMessage(raw);
    if (!decoded.ok) {
      const { code, message, ref } = decoded.error;
      this.deps.onInvalid(this, code);
      this.deps.log.warn({ serial: this.serial, agentId: this.agentId, code, ref }, 'invalid frame from agent');
      this.send({ type: 'error', code, message, ...(ref !== undefined ? { ref } : {}) });
      return;
    }
    const message = decoded.message;
    if (this.agentId === undefined && message.type !== 'hello') {
      // An error message is never answered with another one: two peers could ping-pong forever.
      if (message.type === 'error') {
        this.deps.log.warn({ serial: this.serial, code: message.code }, 'agent error before hello');
        return;
      }
      const ref = message.type === 'result' ? message.id : message.type;
      this.send({ type: 'error', code: 'PROTOCOL_NOT_READY', message: `${message.type} before hello`, ref });
      return;
    }
    this.deps.onMessage(this, message);
  }
}
