// One agent's WebSocket connection: decode every frame through the protocol's table, refuse
// anything before hello, dispatch to one handler per type, keep the link alive with pings.
// A bad frame is answered with an `error` message and counted; it never closes the link
// and never throws.
import type { RawData, WebSocket } from 'ws';
import type { Logger } from '../agent/lib/log.js';
import { asSlipwayError } from '../shared/errors.js';
import { decodeAgentMessage, type AgentMessage, type CoordinatorMessage, type Decoded } from '../shared/protocol.js';
import { CLOSE_NO_HELLO, type AgentHandlerTable, type LinkStats, type SessionContext } from './agent-handlers.js';

/** A link that missed this many pongs in a row is dead: with a 15 s ping period an agent
 * that vanished without a FIN is noticed within 45 s. */
export const MAX_MISSED_PONGS = 2;
/** An authenticated link must say hello within this (the agent sends it right after the
 * upgrade; its own wait for the welcome is 10 s too). */
export const HELLO_TIMEOUT_MS = 10_000;

export interface AgentSessionDeps {
  handlers: AgentHandlerTable;
  stats: LinkStats;
  log: Logger;
  pingIntervalMs: number;
}

export class AgentSession implements SessionContext {
  agentId: string | undefined;
  private missedPongs = 0;
  private readonly pingTimer: NodeJS.Timeout;
  private readonly helloTimer: NodeJS.Timeout;

  constructor(
    private readonly socket: WebSocket,
    readonly serial: number,
    private readonly deps: AgentSessionDeps,
  ) {
    socket.on('message', (data, isBinary) => this.onFrame(data, isBinary));
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
    }, HELLO_TIMEOUT_MS);
  }

  send(message: CoordinatorMessage): void {
    if (this.socket.readyState !== this.socket.OPEN) return;
    this.socket.send(JSON.stringify(message));
  }

  close(code: number, reason: string): void {
    this.socket.close(code, reason);
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
    const raw = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    // One message per text frame (shared/protocol.ts); the agent refuses binary frames alike.
    const decoded: Decoded<AgentMessage> = isBinary
      ? { ok: false, error: { code: 'PROTOCOL_SCHEMA_VIOLATION', message: 'binary frames are not part of the protocol' } }
      : decodeAgentMessage(raw);
    if (!decoded.ok) {
      const { code, message, ref } = decoded.error;
      this.deps.stats.invalidFrames[code] = (this.deps.stats.invalidFrames[code] ?? 0) + 1;
      this.deps.log.warn({ serial: this.serial, agentId: this.agentId, code, ref }, 'invalid frame from agent');
      this.send({ type: 'error', code, message, ...(ref !== undefined ? { ref } : {}) });
      return;
    }
    this.dispatch(decoded.message);
  }

  private dispatch(message: AgentMessage): void {
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
    try {
      // The table is keyed by the message's own type, so the cast only restates that pairing.
      const handler = this.deps.handlers[message.type] as (s: SessionContext, m: AgentMessage) => void;
      handler(this, message);
    } catch (err) {
      // A handler bug must not take the link (or the coordinator) down with it.
      const e = asSlipwayError(err);
      this.deps.log.error({ serial: this.serial, agentId: this.agentId, err }, 'agent message handler failed');
      if (message.type !== 'error') this.send({ type: 'error', code: e.code, message: 'the coordinator failed to handle this message', ref: message.type });
    }
  }
}
