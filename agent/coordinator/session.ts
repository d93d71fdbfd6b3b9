// Session: keeps one link to the coordinator alive. Dial, send the hello with the complete
// current state, wait for the welcome, resend unacknowledged events, then dispatch inbound
// messages through the handler table. A silent link is closed and redialled with backoff;
// dynos keep running whatever the link does.
import type { WebSocket } from 'ws';
import { decodeCoordinatorMessage, type AgentMessage, type CapacityReport, type Hello, type LogBatch } from '../../shared/protocol.js';
import type { Logger } from '../lib/log.js';
import { Backoff, HEALTHY_AFTER_MS } from './backoff.js';
import type { EventOutbox } from './outbox.js';
import type { HandlerTable } from './handlers/types.js';
import { dial, type DialOptions } from './transport.js';

/** Log batches wait while this much is unsent on the socket: logs never crowd out state
 * events and commands on a slow link. */
export const LOG_BACKPRESSURE_BYTES = 1024 * 1024;

/** The coordinator answers a hello at once; 10 s without a welcome means it is not working. */
export const WELCOME_TIMEOUT_MS = 10_000;
/** A ping every 15 s and two missed pongs close the link: a half-open TCP link is found within ~30 s. */
export const PING_INTERVAL_MS = 15_000;
/** Capacity is reported periodically (latest wins) besides being part of every hello. */
export const CAPACITY_INTERVAL_MS = 10_000;
/** After a dyno changes state (committed memory, slug cache) a report follows within this,
 * coalescing a burst of changes into one message. */
export const CAPACITY_DEBOUNCE_MS = 500;

export interface SessionOptions extends DialOptions {
  log: Logger;
  hello: () => Promise<Hello>;
  capacity: () => Promise<CapacityReport['capacity']>;
  handlers: HandlerTable;
  outbox: EventOutbox;
  pingIntervalMs?: number;
  reconnectInitialMs?: number;
}

export interface LinkStatus {
  state: 'connecting' | 'handshaking' | 'ready' | 'waiting';
  connectedSince: string | null;
  reconnects: number;
  lastError: string | null;
  unackedEvents: number;
  droppedEvents: number;
  invalidMessages: number;
}

export class CoordinatorSession {
  private ws: WebSocket | undefined;
  private state: LinkStatus['state'] = 'waiting';
  private closed = false;
  private readonly backoff: Backoff;
  private timers: NodeJS.Timeout[] = [];
  private redialTimer: NodeJS.Timeout | undefined;
  private connectedAt: number | undefined;
  private reconnects = 0;
  private lastError: string | null = null;
  private invalid = 0;
  private capacitySoon: NodeJS.Timeout | undefined;

  constructor(private readonly o: SessionOptions) {
    this.backoff = new Backoff(o.reconnectInitialMs);
  }

  start(): void {
    this.connect();
  }

  /** Sends an event now if the link is ready; it stays in the outbox until acked either way. */
  sendEvent(ev: AgentMessage): void {
    if (this.state === 'ready') this.send(ev);
  }

  /** Sends a batch of log lines made by `take` if the link is ready and not backed up (its
   * send buffer under LOG_BACKPRESSURE_BYTES); otherwise takes nothing and returns false, so
   * the lines wait in the shipper's bounded queue (which drops the oldest when full). */
  trySendLogs(take: () => LogBatch | undefined): boolean {
    const ws = this.ws;
    if (this.state !== 'ready' || !ws || ws.bufferedAmount > LOG_BACKPRESSURE_BYTES) return false;
    const batch = take();
    if (batch) this.send(batch, ws);
    return true;
  }

  /** Sends a capacity report shortly (coalesced), e.g. after a dyno changed state. */
  reportCapacitySoon(): void {
    if (this.state !== 'ready' || this.capacitySoon) return;
    this.capacitySoon = setTimeout(() => {
      this.capacitySoon = undefined;
      this.sendCapacity();
    }, CAPACITY_DEBOUNCE_MS);
  }

  private sendCapacity(): void {
    void this.o.capacity().then((capacity) => this.send({ type: 'capacity', capacity }), (err: unknown) => this.o.log.warn({ err }, 'capacity read failed'));
  }

  status(): LinkStatus {
    return {
      state: this.state,
      connectedSince: this.connectedAt && this.state === 'ready' ? new Date(this.connectedAt).toISOString() : null,
      reconnects: this.reconnects,
      lastError: this.lastError,
      unackedEvents: this.o.outbox.unacked().length,
      droppedEvents: this.o.outbox.dropped,
      invalidMessages: this.invalid,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.redialTimer);
    this.clearTimers();
    const ws = this.ws;
    if (!ws) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => { ws.terminate(); resolve(); }, 2_000);
      ws.once('close', () => { clearTimeout(t); resolve(); });
      ws.close(1001, 'agent shutting down');
    });
  }

  private connect(): void {
    if (this.closed) return;
    this.state = 'connecting';
    const ws = dial(this.o);
    this.ws = ws;
    let alive = true;
    ws.on('open', () => void this.handshake(ws));
    ws.on('pong', () => { alive = true; });
    ws.on('message', (data, isBinary) => this.onMessage(ws, data as Buffer, isBinary));
    ws.on('unexpected-response', (_req, res) => {
      this.lastError = `coordinator refused the upgrade: HTTP ${res.statusCode}`;
    });
    ws.on('error', (err) => { this.lastError = err.message; });
    ws.on('close', (code) => this.onClose(ws, code));
    const ping = setInterval(() => {
      if (!alive) {
        this.o.log.warn('coordinator missed a pong; closing the link');
        this.lastError = 'ping timeout';
        ws.terminate();
        return;
      }
      alive = false;
      if (ws.readyState === ws.OPEN) ws.ping();
    }, this.o.pingIntervalMs ?? PING_INTERVAL_MS);
    this.timers.push(ping);
  }

  private async handshake(ws: WebSocket): Promise<void> {
    this.state = 'handshaking';
    try {
      this.send(await this.o.hello(), ws);
    } catch (err) {
      // Without a hello the coordinator cannot reconcile; close and redial with backoff.
      this.lastError = `could not build the hello: ${(err as Error).message}`;
      this.o.log.error({ err }, 'could not build the hello; redialling');
      ws.terminate();
      return;
    }
    const t = setTimeout(() => {
      if (this.ws === ws && this.state === 'handshaking') {
        this.lastError = 'no welcome from the coordinator';
        ws.terminate();
      }
    }, WELCOME_TIMEOUT_MS);
    this.timers.push(t);
  }

  private onMessage(ws: WebSocket, data: Buffer, isBinary: boolean): void {
    if (this.ws !== ws) return;
    const decoded = isBinary
      ? { ok: false as const, error: { code: 'PROTOCOL_SCHEMA_VIOLATION' as const, message: 'binary frames are not part of the protocol' } }
      : decodeCoordinatorMessage(data);
    if (!decoded.ok) {
      this.invalid++;
      this.o.log.warn({ code: decoded.error.code, ref: decoded.error.ref }, `invalid message from coordinator: ${decoded.error.message}`);
      this.send({ type: 'error', ...decoded.error });
      return;
    }
    const msg = decoded.message;
    const ctx = { send: (m: AgentMessage) => this.send(m, ws), log: this.o.log };
    if (msg.type === 'welcome') {
      this.onWelcome(msg.ackSeq);
      return;
    }
    if (this.state !== 'ready' && msg.type !== 'error') {
      this.send({ type: 'error', code: 'PROTOCOL_NOT_READY', message: `${msg.type} before welcome`, ...('id' in msg ? { ref: msg.id } : {}) });
      return;
    }
    switch (msg.type) {
      case 'ack': return this.o.handlers.ack(msg, ctx);
      case 'start_dyno': return this.o.handlers.start_dyno(msg, ctx);
      case 'stop_dyno': return this.o.handlers.stop_dyno(msg, ctx);
      case 'prefetch_slug': return this.o.handlers.prefetch_slug(msg, ctx);
      case 'drain': return this.o.handlers.drain(msg, ctx);
      case 'undrain': return this.o.handlers.undrain(msg, ctx);
      case 'error': return this.o.handlers.error(msg, ctx);
    }
  }

  private onWelcome(ackSeq: number): void {
    this.state = 'ready';
    this.connectedAt = Date.now();
    this.o.outbox.ack(ackSeq);
    const pending = this.o.outbox.unacked();
    this.o.log.info({ ackSeq, resend: pending.length }, 'coordinator link ready');
    for (const ev of pending) this.send(ev);
    const cap = setInterval(() => this.sendCapacity(), CAPACITY_INTERVAL_MS);
    this.timers.push(cap);
  }

  private onClose(ws: WebSocket, code: number): void {
    if (this.ws !== ws) return;
    this.clearTimers();
    const wasHealthy = this.connectedAt !== undefined && this.state === 'ready' && Date.now() - this.connectedAt >= HEALTHY_AFTER_MS;
    if (wasHealthy) this.backoff.reset();
    this.state = 'waiting';
    this.ws = undefined;
    if (this.closed) return;
    const delay = this.backoff.next();
    this.reconnects++;
    this.o.log.warn({ code, delayMs: delay, lastError: this.lastError }, 'coordinator link closed; redialling');
    this.redialTimer = setTimeout(() => this.connect(), delay);
  }

  private send(msg: AgentMessage, ws = this.ws): void {
    if (ws && ws.readyState === ws.OPEN) ws.send(JSON.stringify(msg));
  }

  private clearTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
    clearTimeout(this.capacitySoon);
    this.capacitySoon = undefined;
  }
}
