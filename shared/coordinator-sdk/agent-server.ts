// The coordinator's side of the agent protocol, for the reference coordinator and for any
// coordinator written in TypeScript: authenticate the upgrade, run the hello/welcome
// handshake, de-duplicate and acknowledge events, correlate commands with their results,
// guard every link, and spread a fleet's reconnects. The application supplies what the
// messages mean (AgentApp); the SDK never interprets a dyno.
//
//   const server = new AgentServer({ token, coordinatorId, log, app });
//   server.attach(httpOrHttpsServer);            // serves AGENT_WS_PATH
//   const result = await server.sendCommand(agentId, { type: 'stop_dyno', dynoId });
//   await server.close();                        // agents are told when to come back
//
// TLS (and client certificates) belong to the http(s) server passed to attach(): an
// https.Server with `requestCert: true, rejectUnauthorized: true, ca` refuses an agent
// without a valid client certificate before any upgrade.
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { asSlipwayError, httpStatusOf, isErrorCode, SlipwayError, type ErrorCode } from '../errors.js';
import { LINK_WS_LIMITS } from '../link-guard.js';
import {
  CLOSE_PROTOCOL_UNSUPPORTED, CLOSE_REPLACED, CLOSE_SERVICE_RESTART, retryAfterReason,
} from '../link-close.js';
import {
  AGENT_WS_PATH, MAX_FRAME_BYTES, PROTOCOL_VERSION,
  type AgentMessage, type CapacityReport, type Command, type DesiredDyno, type ErrorMessage, type Event, type Hello, type LogBatch, type Result, type Welcome,
} from '../protocol.js';
import { AgentLink } from './agent-link.js';
import { CommandTracker } from './command-tracker.js';
import type { SdkLogger } from './logger.js';
import { SeqLedger, type LedgerEntry } from './seq-ledger.js';

/** How many reconnects a second the fleet should make at most after a coordinator restart:
 * the spread hint in every welcome is (known agents / this) seconds. 100 a second brings
 * 2,000 agents back in ~20 s while keeping any one second's attempts under 200 (retries of
 * agents that came too early included; scripts/bench/fleet.sh measures it). */
export const RECONNECTS_PER_SECOND = 100;
/** The spread hint never exceeds this: an agent never waits longer than 2 min to come back. */
export const MAX_SPREAD_MS = 120_000;
/** How often the server checks whether links were welcomed with a spread hint that the
 * fleet has since outgrown (a `hint` goes to those whose value is under 3/4 of today's). */
export const HINT_CHECK_MS = 5_000;
/** A shutdown waits this long for agents to answer the close handshake before cutting them. */
const CLOSE_GRACE_MS = 1_000;
/** 30 s: the agent answers a command right after admission, not when the dyno is up. */
export const COMMAND_TIMEOUT_MS = 30_000;
export const PING_INTERVAL_MS = 15_000;

/** A command without its id (the server assigns one). */
export type CommandBody = Command extends infer C ? (C extends Command ? Omit<C, 'id'> : never) : never;

/** What sends commands to agents (AgentServer does; tests may fake it). */
export interface CommandSender {
  sendCommand(agentId: string, command: CommandBody): Promise<Result>;
}

/** What the application decides; every callback is synchronous and must not block. */
export interface AgentApp {
  /** A hello was accepted (the complete current state of the agent's host). Return the
   * desired set for that host (DesiredDyno: with a spec to have the agent start it), or
   * undefined to keep none. Runs before the welcome is sent. */
  hello(agentId: string, hello: Hello): { desired?: DesiredDyno[] } | undefined;
  /** After the welcome went out: commands may be sent from here on. */
  ready?(agentId: string): void;
  /** An event, exactly once per agent seq, in the agent's order. */
  event(agentId: string, event: Event): void;
  capacity(agentId: string, report: CapacityReport): void;
  logs?(agentId: string, batch: LogBatch): void;
  error?(agentId: string, message: ErrorMessage): void;
  /** The agent's current link closed (its dynos keep running). */
  disconnected?(agentId: string): void;
}

export interface AgentServerOptions {
  token: string;
  coordinatorId: string;
  app: AgentApp;
  log: SdkLogger;
  pingIntervalMs?: number;
  helloTimeoutMs?: number;
  commandTimeoutMs?: number;
  reconnectsPerSecond?: number;
  hintCheckMs?: number;
  /** The leader's epoch, sent in every welcome (coordinators that share a store: each new
   * leader's is higher, and agents refuse commands from a lower one). Absent: none is sent. */
  epoch?: number;
  /** The de-duplication ledger to start from (a new leader's, loaded from the store): the
   * events a previous leader acknowledged are not applied again. */
  ledger?: Iterable<LedgerEntry>;
  /** Makes events durable before they are acknowledged. Called after app.event() and after
   * every change of an agent's ledger entry; when it returns a promise, the ack waits for it
   * (acks are cumulative, so they must resolve in call order). A rejection sends no ack: the
   * agent keeps the event and resends it on its next link. */
  durable?: (entry: LedgerEntry) => Promise<void> | undefined;
}

/** Counters for a health endpoint. */
export interface AgentServerStats {
  connected: number;
  invalidFrames: Record<string, number>;
  duplicateEvents: number;
  agentErrors: number;
  refusedUpgrades: number;
}

export class AgentServer implements CommandSender {
  private readonly wss: WebSocketServer;
  private readonly links = new Map<string, AgentLink>();
  private readonly all = new Set<AgentLink>();
  private readonly ledger = new SeqLedger();
  private readonly commands: CommandTracker;
  private readonly tokenDigest: Buffer;
  private readonly counters: Omit<AgentServerStats, 'connected'> = { invalidFrames: {}, duplicateEvents: 0, agentErrors: 0, refusedUpgrades: 0 };
  private nextSerial = 1;
  private closing = false;
  /** The spread hint each link was last given. */
  private readonly hinted = new WeakMap<AgentLink, number>();
  private readonly hintTimer: NodeJS.Timeout;

  constructor(private readonly o: AgentServerOptions) {
    this.tokenDigest = digest(o.token);
    this.commands = new CommandTracker(o.commandTimeoutMs ?? COMMAND_TIMEOUT_MS);
    if (o.ledger) this.ledger.restore(o.ledger);
    // noServer: the upgrade is authenticated here before ws sees it.
    // The payload and fragment bounds are ws's own (link-guard.ts: what it closes with).
    this.wss = new WebSocketServer({ noServer: true, ...LINK_WS_LIMITS, perMessageDeflate: false });
    // Agents that connected while the fleet was small (the first ones after a restart) hold a
    // small hint; without an update they would all come back at once after the next restart.
    this.hintTimer = setInterval(() => this.refreshHints(), o.hintCheckMs ?? HINT_CHECK_MS);
    this.hintTimer.unref();
  }

  private refreshHints(): void {
    const spreadMs = this.spreadMs();
    for (const link of this.links.values()) {
      if ((this.hinted.get(link) ?? 0) >= spreadMs * 0.75) continue;
      this.hinted.set(link, spreadMs);
      link.send({ type: 'hint', reconnect: { spreadMs } });
    }
  }

  /** Serves agent upgrades on `server`; every other upgrade path gets 404. */
  attach(server: Server | HttpsServer): void {
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.handleUpgrade(req, socket, head));
  }

  /** Sends a command with a fresh id; resolves with the agent's result (ok or not). Rejects
   * with AGENT_UNREACHABLE when the agent has no link or it closes first, and COMMAND_TIMEOUT
   * when the agent does not answer in time (the command may then have run). */
  sendCommand(agentId: string, command: CommandBody): Promise<Result> {
    const link = this.links.get(agentId);
    if (!link || !link.open) return Promise.reject(new SlipwayError('AGENT_UNREACHABLE', `agent ${agentId} is not connected`));
    const id = `cmd-${randomUUID()}`;
    const answer = this.commands.track(id, agentId, link.serial);
    link.send({ ...command, id });
    return answer;
  }

  lastSeq(agentId: string): number {
    return this.ledger.lastSeq(agentId);
  }

  /** Whether the agent has a live, welcomed link to this server. */
  connected(agentId: string): boolean {
    return this.links.get(agentId)?.open ?? false;
  }

  stats(): AgentServerStats {
    return { connected: this.links.size, ...this.counters, invalidFrames: { ...this.counters.invalidFrames } };
  }

  /** The reconnect spread every welcome carries: known agents / reconnectsPerSecond. */
  spreadMs(): number {
    const agents = Math.max(this.ledger.size, this.links.size);
    return Math.min(MAX_SPREAD_MS, Math.round((agents * 1000) / (this.o.reconnectsPerSecond ?? RECONNECTS_PER_SECOND)));
  }

  /**
   * Closes every link with 1012 (service restart), naming each agent its own time to come
   * back, spread evenly over spreadMs (default: the welcome hint), so a restart does not
   * bring the whole fleet back in one second. Pending commands fail with AGENT_UNREACHABLE.
   */
  async close(spreadMs = this.spreadMs()): Promise<void> {
    this.closing = true;
    clearInterval(this.hintTimer);
    const links = [...this.all];
    const closed = links.map((link, i) => {
      const slot = links.length > 1 ? Math.round((spreadMs * i) / links.length) : 0;
      return link.closeAndWait(CLOSE_SERVICE_RESTART, retryAfterReason('coordinator restarting', slot), CLOSE_GRACE_MS);
    });
    await Promise.all(closed);
    this.commands.failAll(new SlipwayError('AGENT_UNREACHABLE', 'the coordinator is shutting down'));
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  /** Serves one upgrade request (for a process that routes upgrades itself, e.g. to the
   * AgentServer of its current leadership term). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', (err) => this.o.log.debug({ err }, 'upgrade socket error'));
    const path = new URL(req.url ?? '/', 'http://coordinator').pathname;
    if (path !== AGENT_WS_PATH) return this.refuse(socket, 'HTTP_NOT_FOUND', `no WebSocket endpoint at ${path}`);
    if (this.closing) {
      return this.refuse(socket, 'COORDINATOR_SHUTTING_DOWN', 'the coordinator is shutting down', Math.ceil(this.spreadMs() / 1000) || 1);
    }
    if (!this.authorized(req.headers.authorization)) {
      this.o.log.warn({ remote: req.socket.remoteAddress }, 'agent upgrade refused: bad bearer token');
      return this.refuse(socket, 'AUTH_INVALID_TOKEN', 'missing or wrong bearer token');
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, req));
  }

  /** Constant-time: both sides are hashed to equal-length digests first, so neither the
   * comparison nor an early length check leaks how much of the token matched. */
  private authorized(header: string | undefined): boolean {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
    const presented = digest(m?.[1] ?? '');
    return timingSafeEqual(presented, this.tokenDigest) && m !== null;
  }

  private accept(ws: WebSocket, req: IncomingMessage): void {
    const serial = this.nextSerial++;
    const link = new AgentLink(ws, req.socket, serial, req.socket.remoteAddress, {
      log: this.o.log,
      pingIntervalMs: this.o.pingIntervalMs ?? PING_INTERVAL_MS,
      ...(this.o.helloTimeoutMs !== undefined ? { helloTimeoutMs: this.o.helloTimeoutMs } : {}),
      onMessage: (l, m) => this.dispatch(l, m),
      onInvalid: (_l, code) => { this.counters.invalidFrames[code] = (this.counters.invalidFrames[code] ?? 0) + 1; },
    });
    this.all.add(link);
    this.o.log.info({ serial, remote: link.remoteAddress }, 'agent link open');
    link.onClose((code, reason) => {
      this.all.delete(link);
      const agentId = link.agentId;
      const current = agentId !== undefined && this.links.get(agentId) === link;
      if (current) this.links.delete(agentId);
      this.commands.failLink(serial, new SlipwayError('AGENT_UNREACHABLE', `the link to agent ${agentId ?? '?'} closed before it answered`));
      this.o.log.info({ serial, agentId, code, reason, current }, 'agent link closed');
      if (current) this.call(() => this.o.app.disconnected?.(agentId));
    });
  }

  private dispatch(link: AgentLink, m: AgentMessage): void {
    try {
      switch (m.type) {
        case 'hello': return this.onHello(link, m);
        case 'event': return this.onEvent(link, m);
        case 'result':
          if (!this.commands.settle(link.agentId as string, m)) this.o.log.warn({ agentId: link.agentId, commandId: m.id }, 'result for no pending command (late or unknown)');
          return;
        case 'capacity': return this.o.app.capacity(link.agentId as string, m);
        case 'logs': return this.o.app.logs?.(link.agentId as string, m);
        case 'error': return this.onAgentError(link, m);
      }
    } catch (err) {
      // An application bug must not take the link (or the coordinator) down with it.
      const e = asSlipwayError(err);
      this.o.log.error({ serial: link.serial, agentId: link.agentId, err }, 'agent message handler failed');
      if (m.type !== 'error') link.send({ type: 'error', code: e.code, message: 'the coordinator failed to handle this message', ref: m.type });
    }
  }

  private onHello(link: AgentLink, m: Hello): void {
    if (m.protocol !== PROTOCOL_VERSION) {
      link.send({ type: 'error', code: 'PROTOCOL_VERSION_UNSUPPORTED', message: `this coordinator speaks protocol ${PROTOCOL_VERSION}, not ${m.protocol}`, ref: 'hello' });
      link.close(CLOSE_PROTOCOL_UNSUPPORTED, 'protocol version unsupported');
      return;
    }
    const agentId = m.agent.id;
    if (link.agentId !== undefined && link.agentId !== agentId) {
      link.send({ type: 'error', code: 'PROTOCOL_SCHEMA_VIOLATION', message: 'an agent cannot change its id on a live link', ref: 'hello' });
      return;
    }
    link.agentId = agentId;
    const previous = this.links.get(agentId);
    this.links.set(agentId, link);
    if (previous && previous !== link) {
      this.o.log.info({ agentId, serial: previous.serial }, 'closing the older link of a reconnected agent');
      previous.close(CLOSE_REPLACED, 'replaced by a newer connection of the same agent');
    }
    const ackSeq = this.ledger.enter(agentId, m.seqEpoch);
    // A new numbering resets the ledger entry: stored before any of its events is acked.
    void this.o.durable?.(this.ledger.entry(agentId))?.catch(() => undefined);
    const decided = this.o.app.hello(agentId, m);
    const welcome: Welcome = { type: 'welcome', protocol: PROTOCOL_VERSION, coordinatorId: this.o.coordinatorId, ackSeq, reconnect: { spreadMs: this.spreadMs() } };
    if (this.o.epoch !== undefined) welcome.epoch = this.o.epoch;
    if (decided?.desired) welcome.desired = fitDesired(decided.desired, welcome);
    link.send(welcome);
    this.hinted.set(link, welcome.reconnect?.spreadMs ?? 0);
    this.o.log.info({ agentId, hostname: m.agent.hostname, dynos: m.dynos.length, desired: welcome.desired?.length, ackSeq }, 'agent said hello');
    this.call(() => this.o.app.ready?.(agentId));
  }

  private onEvent(link: AgentLink, m: Event): void {
    const agentId = link.agentId as string;
    if (this.ledger.accept(agentId, m.seq) === 'duplicate') {
      // Resent after a reconnect, or sent twice: already applied; ack again, apply never.
      this.counters.duplicateEvents++;
      link.send({ type: 'ack', seq: this.ledger.lastSeq(agentId) });
      return;
    }
    this.o.app.event(agentId, m);
    const durable = this.o.durable?.(this.ledger.entry(agentId));
    if (!durable) {
      link.send({ type: 'ack', seq: m.seq });
      return;
    }
    durable.then(
      () => { if (link.open) link.send({ type: 'ack', seq: m.seq }); },
      (err: unknown) => this.o.log.warn({ agentId, seq: m.seq, err }, 'event not made durable: not acknowledged (the agent resends it)'),
    );
  }

  private onAgentError(link: AgentLink, m: ErrorMessage): void {
    this.counters.agentErrors++;
    const agentId = link.agentId;
    this.o.log.warn({ agentId, code: m.code, ref: m.ref, message: m.message }, 'agent reported an error');
    if (agentId !== undefined && m.ref !== undefined) {
      // The agent could not accept a command (an invalid frame): fail its waiter now.
      this.commands.fail(m.ref, agentId, new SlipwayError(isErrorCode(m.code) ? m.code : 'INTERNAL', m.message));
    }
    if (agentId !== undefined) this.o.app.error?.(agentId, m);
  }

  /** Runs an application callback that must not throw; logs if it does. */
  private call(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.o.log.error({ err }, 'agent app callback failed');
    }
  }

  /** Answers a refused upgrade with a JSON error, in the status of its code, and destroys the
   * socket once it is written. */
  private refuse(socket: Duplex, code: ErrorCode, message: string, retryAfterS?: number): void {
    this.counters.refusedUpgrades++;
    refuseUpgrade(socket, code, message, retryAfterS);
  }
}

/** Answers an upgrade request with a JSON error in the status of its code (and Retry-After
 * when given), then destroys the socket once the answer is written. */
export function refuseUpgrade(socket: Duplex, code: ErrorCode, message: string, retryAfterS?: number): void {
  const status = httpStatusOf(code);
  const statusText = STATUS_CODES[status] ?? 'Error';
  const body = JSON.stringify({ error: { code, message } });
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${statusText}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `${status === 401 ? 'WWW-Authenticate: Bearer\r\n' : ''}${retryAfterS !== undefined ? `Retry-After: ${retryAfterS}\r\n` : ''}Connection: close\r\n\r\n${body}`,
  );
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** A welcome must fit one frame: when the specs of the desired set would not, the largest
 * specs are left out (the dyno stays desired; the coordinator can start it by command). */
export function fitDesired(desired: DesiredDyno[], welcome: Welcome): DesiredDyno[] {
  // Without specs the set fits: 4,096 ids (the schema's bound) are ~250 KB. Skips measuring
  // every welcome of a reconnect storm.
  if (!desired.some((d) => d.spec)) return desired;
  const size = (d: DesiredDyno[]) => Buffer.byteLength(JSON.stringify({ ...welcome, desired: d }));
  if (size(desired) <= MAX_FRAME_BYTES) return desired;
  const out = desired.map((d) => ({ ...d }));
  const bySpecSize = out.filter((d) => d.spec).sort((a, b) => JSON.stringify(b.spec).length - JSON.stringify(a.spec).length);
  for (const d of bySpecSize) {
    delete d.spec;
    if (size(out) <= MAX_FRAME_BYTES) break;
  }
  return out;
}
