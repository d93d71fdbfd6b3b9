// The agents' WebSocket endpoint on the API server (path AGENT_WS_PATH). It authenticates
// the upgrade with the bearer token, then gives each connection an AgentSession. The hub
// owns the sessions; the registry knows which one is an agent's current link.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from '../agent/lib/log.js';
import { SlipwayError } from '../shared/errors.js';
import { AGENT_WS_PATH, MAX_FRAME_BYTES } from '../shared/protocol.js';
import type { AgentHandlerTable, LinkStats } from './agent-handlers.js';
import type { AgentRegistry } from './agent-registry.js';
import { AgentSession } from './agent-session.js';
import type { CommandTracker } from './command-tracker.js';

/** How long a shutdown waits for agents to answer the close handshake before cutting them. */
const CLOSE_GRACE_MS = 1_000;
const CLOSE_GOING_AWAY = 1001;

export interface AgentHubDeps {
  token: string;
  handlers: AgentHandlerTable;
  registry: AgentRegistry;
  commands: CommandTracker;
  stats: LinkStats;
  pingIntervalMs: number;
  log: Logger;
}

export class AgentHub {
  private readonly wss: WebSocketServer;
  private readonly sessions = new Set<AgentSession>();
  private readonly tokenDigest: Buffer;
  private nextSerial = 1;
  private closing = false;

  constructor(private readonly deps: AgentHubDeps) {
    this.tokenDigest = digest(deps.token);
    // noServer: the upgrade is authenticated here before ws sees it.
    this.wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES, perMessageDeflate: false });
  }

  /** Serves agent upgrades on `server`; every other upgrade path gets 404. */
  attach(server: Server): void {
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', (err) => this.deps.log.debug({ err }, 'upgrade socket error'));
    const path = new URL(req.url ?? '/', 'http://coordinator').pathname;
    if (path !== AGENT_WS_PATH) return refuse(socket, 404, 'Not Found', 'PROTOCOL_UNKNOWN_TYPE', `no WebSocket endpoint at ${path}`);
    if (this.closing) return refuse(socket, 503, 'Service Unavailable', 'PROTOCOL_NOT_READY', 'the coordinator is shutting down');
    if (!this.authorized(req.headers.authorization)) {
      this.deps.log.warn({ remote: req.socket.remoteAddress }, 'agent upgrade refused: bad bearer token');
      return refuse(socket, 401, 'Unauthorized', 'AUTH_INVALID_TOKEN', 'missing or wrong bearer token');
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
    const log = this.deps.log;
    const session = new AgentSession(ws, serial, {
      handlers: this.deps.handlers, stats: this.deps.stats, log, pingIntervalMs: this.deps.pingIntervalMs,
    });
    this.sessions.add(session);
    log.info({ serial, remote: req.socket.remoteAddress }, 'agent link open');
    ws.on('close', (code, reason) => {
      this.sessions.delete(session);
      const agentId = session.agentId;
      const current = agentId !== undefined && this.deps.registry.detach(agentId, session);
      this.deps.commands.failLink(serial, new SlipwayError('AGENT_UNREACHABLE', `the link to agent ${agentId ?? '?'} closed before it answered`));
      // Routes stay: dynos keep running while the link is down (see route-table.ts).
      log.info({ serial, agentId, code, reason: reason.toString('utf8'), current }, 'agent link closed');
    });
  }

  /** Closes every agent link (agents redial with backoff; their dynos keep running). */
  async close(): Promise<void> {
    this.closing = true;
    const closed = [...this.sessions].map((session) => session.closeAndWait(CLOSE_GOING_AWAY, 'coordinator shutting down', CLOSE_GRACE_MS));
    await Promise.all(closed);
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Answers a refused upgrade with a JSON error and destroys the socket once it is written. */
function refuse(socket: Duplex, status: number, statusText: string, code: string, message: string): void {
  const body = JSON.stringify({ error: { code, message } });
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${statusText}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `${status === 401 ? 'WWW-Authenticate: Bearer\r\n' : ''}Connection: close\r\n\r\n${body}`,
  );
}
