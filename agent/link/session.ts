// Session: keeps one link to the coordinator alive. Dial, send the hello with the complete
// current state, wait for the welcome, resend unacknowledged events, then dispatch inbound
// messages through the handler table. A silent link is closed and redialled with backoff;
// dynos keep running whatever the link does. The session owns the socket and its timing;
// what goes out (the outbox, the journal, handlers, convergence) belongs to AgentLink
// (agent-link.ts), which builds the session.
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { retryAfterFromHeader, retryAfterFromReason } from '../../shared/link-close.js';
import { guardLink } from '../../shared/link-guard.js';
import { decodeCoordinatorMessage, type AgentMessage, type CapacityReport, type Hello, type LogBatch, type Welcome } from '../../shared/protocol.js';
import type { Logger } from '../../shared/log.js';
import { realClock, type Clock } from '../lib/clock.js';
import { Backoff, HEALTHY_AFTER_MS } from './backoff.js';
import type { EventOutbox } from './outbox.js';
import type { JournalStatus } from './journal-writer.js';
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
  /** The outbox's journal writer, for the status (none: status().journal is null). */
  journal?: { status(): JournalStatus };
  pingIntervalMs?: number;
  reconnectInitialMs?: number;
  /** A link up this long resets the backoff (default HEALTHY_AFTER_MS); tests shorten it. */
  healthyAfterMs?: number;
  /** Readings for connectedSince (wall) and the healthy-after check (monotonic); the link's
   * timers are Node's, monotonic already (clock.ts). Default: the real clock. */
  clock?: Pick<Clock, 'now' | 'monotonic'>;
  /** After every welcome (the desired set converges here); must not throw. */
  onWelcome?: (welcome: Welcome) => void;
  /** After a ready link closed. */
  onLinkLost?: () => void;
  /** Called on every dial attempt (metrics; the fleet benchmark counts attempts a second). */
  onDial?: () => void;
}

export interface LinkStatus {
  state: 'connecting' | 'handshaking' | 'ready' | 'waiting';
  connectedSince: string | null;
  reconnects: number;
  lastError: string | null;
  unackedEvents: number;
  droppedEvents: number;
  invalidMessages: number;
  /** The last close: its code, and the redial delay chosen. */
  lastClose: { code: number; delayMs: number; namedByCoordinator: boolean } | null;
  /** Times the link was closed for breaking its limits (flood, oversize frame). */
  policyCloses: number;
  /** The coordinator's reconnect spread hint (welcome or hint), in ms. */
  spreadMs: number;
  /** Whether unacked events reach the disk (journal-writer.ts); null without a journal. */
  journal: JournalStatus | null;
}

export class LinkSession {
  private ws: WebSocket | undefined;
  private state: LinkStatus['state'] = 'waiting';
  private closed = false;
  private readonly backoff: Backoff;
  private timers: NodeJS.Timeout[] = [];
  private redialTimer: NodeJS.Timeout | undefined;
  /** When the current link got its welcome: wall time for status(), monotonic for how long it
   * lived (an NTP step must neither make a young link healthy nor a healthy one young). */
  private connectedAt: number | undefined;
  private connectedAtMono = 0;
  private reconnects = 0;
  private lastError: string | null = null;
  private invalid = 0;
  private capacitySoon: NodeJS.Timeout | undefined;
  /** The coordinator's reconnect hint from the last welcome or hint. */
  private spreadMs = 0;
  /** A redial time the coordinator named on a refused upgrade (Retry-After). */
  private namedRetryMs: number | undefined;
  private lastClose: LinkStatus['lastClose'] = null;
  private policyCloses = 0;

  private readonly clock: Pick<Clock, 'now' | 'monotonic'>;

  constructor(private readonly o: SessionOptions) {
    this.backoff = new Backoff(o.reconnectInitialMs);
    this.clock = o.clock ?? realClock;
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
      lastClose: this.lastClose,
      policyCloses: this.policyCloses,
      spreadMs: this.spreadMs,
      journal: this.o.journal?.status() ?? null,
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
    this.o.onDial?.();
    const ws = dial(this.o);
    this.ws = ws;
    let alive = true;
    let socket: Socket | undefined;
    let admit: () => boolean = () => true;
    let refused: string | undefined;
    ws.on('upgrade', (res) => { socket = res.socket; });
    ws.on('open', () => {
      // Registered once the raw socket is known: the guard counts its bytes (wire bound) and hears ws's fragment-bound error.
      if (socket) {
        admit = guardLink(ws, socket, (kind, detail) => {
          this.policyCloses++;
          this.lastError = `coordinator broke the link's limits (${kind}): ${detail}`;
          this.o.log.warn({ kind }, `closing the coordinator link: ${detail}`);
        }).admit;
      }
      void this.handshake(ws);
    });
    ws.on('pong', () => { alive = true; });
    ws.on('message', (data, isBinary) => {
      if (admit()) this.onMessage(ws, data as Buffer, isBinary);
    });
    ws.on('unexpected-response', (_req, res) => {
      // 503/429 may name when to come back; anything else (401: bad token) backs off as usual.
      if (res.statusCode === 503 || res.statusCode === 429) this.namedRetryMs = retryAfterFromHeader(res.headers['retry-after']);
      res.resume();
      // terminate() while connecting aborts the handshake and emits error + close (redial).
      refused = `coordinator refused the upgrade: HTTP ${res.statusCode}`;
      this.lastError = refused;
      ws.terminate();
    });
    ws.on('error', (err) => { this.lastError = refused ?? err.message; });
    ws.on('close', (code, reason) => this.onClose(ws, code, reason.toString('utf8')));
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
      this.onWelcome(msg);
      return;
    }
    if (msg.type === 'hint') {
      this.spreadMs = msg.reconnect.spreadMs;
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

  private onWelcome(welcome: Welcome): void {
    const { ackSeq } = welcome;
    this.state = 'ready';
    this.connectedAt = this.clock.now();
    this.connectedAtMono = this.clock.monotonic();
    this.spreadMs = welcome.reconnect?.spreadMs ?? 0;
    this.o.outbox.ack(ackSeq);
    const pending = this.o.outbox.unacked();
    this.o.log.info({ ackSeq, resend: pending.length, desired: welcome.desired?.length, spreadMs: this.spreadMs }, 'coordinator link ready');
    for (const ev of pending) this.send(ev);
    try {
      this.o.onWelcome?.(welcome);
    } catch (err) {
      this.o.log.error({ err }, 'converging to the welcome failed');
    }
    const cap = setInterval(() => this.sendCapacity(), CAPACITY_INTERVAL_MS);
    this.timers.push(cap);
  }

  private onClose(ws: WebSocket, code: number, reason: string): void {
    if (this.ws !== ws) return;
    this.clearTimers();
    const wasReady = this.state === 'ready';
    const wasHealthy = this.connectedAt !== undefined && wasReady && this.clock.monotonic() - this.connectedAtMono >= (this.o.healthyAfterMs ?? HEALTHY_AFTER_MS);
    if (wasHealthy) this.backoff.reset();
    this.state = 'waiting';
    this.ws = undefined;
    if (wasReady) this.o.onLinkLost?.();
    if (this.closed) return;
    // Redial: when the coordinator named a time (close reason or Retry-After), then; after a
    // working link dropped, at a random time within the coordinator's spread hint; else backoff.
    const named = this.namedRetryMs ?? retryAfterFromReason(reason);
    this.namedRetryMs = undefined;
    const delay = named !== undefined ? this.backoff.startFrom(named, this.spreadMs) : wasReady && this.spreadMs > 0 ? this.backoff.spread(this.spreadMs) : this.backoff.next();
    this.lastClose = { code, delayMs: delay, namedByCoordinator: named !== undefined };
    this.reconnects++;
    this.o.log.warn({ code, reason, delayMs: delay, lastError: this.lastError }, 'coordinator link closed; redialling');
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
