// Session: keeps one link to the coordinator alive. Dial, send the hello with the complete
// current state, wait for the welcome, resend unacknowledged events, then dispatch inbound
// messages through the handler table. A silent link is closed and redialled with backoff;
// dynos keep running whatever the link does. The session owns the socket and its timing;
// what goes out (the outbox, the journal, handlers, convergence) belongs to AgentLink
// (agent-link.ts), which builds the session.
//
// Several coordinators (docs/protocol.md, "Several coordinators"): the session dials the URL
// that UrlRotation (url-rotation.ts) names, and takes a welcome only from the highest leader
// epoch it has seen (leader-epoch.ts). A welcome from a lower epoch is a deposed leader's:
// nothing of it is applied, the commands that follow it are answered COORDINATOR_STALE_EPOCH,
// and the link is closed with CLOSE_STALE_EPOCH. With one URL and no epochs the session
// behaves as it did before the list existed.
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { CLOSE_STALE_EPOCH, retryAfterFromHeader, retryAfterFromReason } from '../../shared/link-close.js';
import { guardLink } from '../../shared/link-guard.js';
import { decodeCoordinatorMessage, type AgentMessage, type CapacityReport, type CoordinatorMessage, type Hello, type LogBatch, type Welcome } from '../../shared/protocol.js';
import type { Logger } from '../../shared/log.js';
import { realClock, type Clock } from '../lib/clock.js';
import { Backoff, HEALTHY_AFTER_MS } from './backoff.js';
import type { EventOutbox } from './outbox.js';
import type { JournalStatus } from './journal-writer.js';
import type { HandlerTable } from './handlers/types.js';
import { LeaderEpoch } from './leader-epoch.js';
import { UrlRotation } from './url-rotation.js';
import { dial, dialUrls, readRefusalCode, type LinkDialOptions } from './transport.js';

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
/** A refused (lower-epoch) welcome's link stays open this long before the agent closes it
 * (CLOSE_STALE_EPOCH): commands a deposed leader sent right behind its welcome arrive within a
 * round trip, and are answered COORDINATOR_STALE_EPOCH, which tells that leader it was deposed
 * (a closed link would read AGENT_UNREACHABLE, which it retries). Short against the failover:
 * the next URL is dialled once the link has closed. */
export const STALE_LINK_LINGER_MS = 500;

export interface SessionOptions extends LinkDialOptions {
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
  /** The coordinator URL of the link (being dialled, or up). Optional only for status fakes. */
  coordinatorUrl?: string;
  /** The highest leader epoch a welcome carried (0: none yet, or no epochs). */
  leaderEpoch?: number;
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
  /** Which URL to dial next; it shares the backoff, which counts rounds, not dials. */
  private readonly rotation: UrlRotation;
  /** The highest leader epoch seen, in memory only (leader-epoch.ts says why). */
  private readonly leader = new LeaderEpoch();
  /** The epoch the current link's welcome carried; undefined until it sent one. */
  private linkEpoch: number | undefined;

  private readonly clock: Pick<Clock, 'now' | 'monotonic'>;

  constructor(private readonly o: SessionOptions) {
    this.backoff = new Backoff(o.reconnectInitialMs);
    this.rotation = new UrlRotation(dialUrls(o), this.backoff);
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
      coordinatorUrl: this.rotation.url,
      leaderEpoch: this.leader.highest,
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
    const ws = dial({ url: this.rotation.url, token: this.o.token, ca: this.o.ca, clientCert: this.o.clientCert });
    this.ws = ws;
    this.linkEpoch = undefined;
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
      const status = res.statusCode;
      // The body's code says why (COORDINATOR_NOT_LEADER: a follower), for the log; read with
      // a bound (transport.ts), then terminate() aborts the handshake: error + close (redial).
      readRefusalCode(res, (code) => {
        refused = `coordinator refused the upgrade: HTTP ${status}${code ? ` ${code}` : ''}`;
        this.lastError = refused;
        ws.terminate();
      });
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
    if (this.linkEpoch !== undefined && this.leader.isStale(this.linkEpoch)) {
      this.onStaleMessage(ws, msg, this.linkEpoch);
      return;
    }
    if (msg.type === 'welcome') {
      this.onWelcome(ws, msg);
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

  private onWelcome(ws: WebSocket, welcome: Welcome): void {
    this.linkEpoch = welcome.epoch ?? 0;
    if (!this.leader.welcome(welcome.epoch)) {
      this.refuseStaleWelcome(ws, welcome);
      return;
    }
    this.rotation.welcomed();
    const { ackSeq } = welcome;
    this.state = 'ready';
    this.connectedAt = this.clock.now();
    this.connectedAtMono = this.clock.monotonic();
    this.spreadMs = welcome.reconnect?.spreadMs ?? 0;
    this.o.outbox.ack(ackSeq);
    const pending = this.o.outbox.unacked();
    this.o.log.info({ ackSeq, resend: pending.length, desired: welcome.desired?.length, spreadMs: this.spreadMs, url: this.rotation.url, epoch: this.linkEpoch }, 'coordinator link ready');
    for (const ev of pending) this.send(ev);
    try {
      this.o.onWelcome?.(welcome);
    } catch (err) {
      this.o.log.error({ err }, 'converging to the welcome failed');
    }
    const cap = setInterval(() => this.sendCapacity(), CAPACITY_INTERVAL_MS);
    this.timers.push(cap);
  }

  /** A welcome below the highest epoch seen: a deposed leader's. Nothing of it is applied (not
   * its ackSeq, not its desired set); the coordinator is told why, its commands meanwhile are
   * refused (onStaleMessage), and the link closes after STALE_LINK_LINGER_MS. */
  private refuseStaleWelcome(ws: WebSocket, welcome: Welcome): void {
    const epoch = this.linkEpoch ?? 0;
    const highest = this.leader.highest;
    if (this.state === 'ready') {
      // A second welcome on a live link, from a lower epoch than its first: the link is lost.
      this.clearTimers();
      this.o.onLinkLost?.();
    }
    this.state = 'handshaking';
    this.lastError = `refused a welcome from leader epoch ${epoch}, below epoch ${highest} this agent was welcomed with (a deposed leader)`;
    this.o.log.warn({ url: this.rotation.url, coordinatorId: welcome.coordinatorId, epoch, leaderEpoch: highest }, 'refusing the welcome of a deposed leader; closing its link');
    this.send({ type: 'error', code: 'COORDINATOR_STALE_EPOCH', message: this.lastError, ref: 'welcome' }, ws);
    const t = setTimeout(() => {
      if (ws.readyState === ws.OPEN) ws.close(CLOSE_STALE_EPOCH, `welcome epoch ${epoch} is below leader epoch ${highest}`);
    }, STALE_LINK_LINGER_MS);
    this.timers.push(t);
  }

  /** A frame on a link whose welcome was refused: commands are answered COORDINATOR_STALE_EPOCH
   * and never run; acks, hints, errors and further welcomes change nothing. */
  private onStaleMessage(ws: WebSocket, msg: CoordinatorMessage, linkEpoch: number): void {
    const refusal = this.leader.refusal(msg, linkEpoch);
    if (!refusal) return;
    this.o.log.warn({ type: msg.type, commandId: refusal.id, epoch: linkEpoch, leaderEpoch: this.leader.highest }, 'refused a command from a deposed leader');
    this.send(refusal, ws);
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
    // Redial (url-rotation.ts): a dial that got no welcome moves on to the next URL at once
    // while the round has URLs left. A round's end, or a working link's drop, waits: the time
    // the coordinator named (close reason or Retry-After), else after a working link a random
    // time within the coordinator's spread hint, else the backoff. With one URL every close
    // ends a round: exactly the single coordinator's rules.
    const named = this.namedRetryMs ?? retryAfterFromReason(reason);
    this.namedRetryMs = undefined;
    const url = this.rotation.url;
    const redial = wasReady ? this.rotation.dropped(named, this.spreadMs) : this.rotation.failed(named, this.spreadMs);
    this.lastClose = { code, delayMs: redial.delayMs, namedByCoordinator: redial.namedByCoordinator };
    this.reconnects++;
    const fields = { code, reason, delayMs: redial.delayMs, lastError: this.lastError, url };
    if (redial.sameRound) this.o.log.info({ ...fields, next: this.rotation.url }, 'no welcome from this coordinator; dialling the next coordinator URL');
    else this.o.log.warn(fields, 'coordinator link closed; redialling');
    this.redialTimer = setTimeout(() => this.connect(), redial.delayMs);
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
