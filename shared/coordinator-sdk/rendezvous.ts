// The coordinator's side of an attached one-off dyno: a rendezvous that the developer CLI and
// the agent running the dyno both dial (RENDEZVOUS_PATH + session id, each with a bearer
// secret of its own), after which every frame one sends reaches the other as it was
// (shared/attach.ts). Heroku's `heroku run` works the same way through its rendezvous service.
//
// Bounds, so that neither end can make the coordinator hold or wait without end:
// - a leg's secret is good once, for that leg of that session; a second dial is refused;
// - the leg that comes first waits at most `peerWaitMs` for the other (the agent dials once
//   the dyno runs, after its slug was fetched: minutes on a cold host);
// - what is relayed and not yet written to the slower side is at most `highWaterBytes`: past it
//   the faster side is paused (its socket stops being read, so TCP pushes back to the sender,
//   a dyno printing 100 MB included) and resumed below half of it;
// - a session lives at most `maxLifeMs` (Heroku's one-off dynos: 24 h).
// When one leg closes, the other is closed with the same code; a leg whose peer was lost gets
// ATTACH_CLOSE.peerGone (the agent then stops the dyno after its grace).
import { randomBytes, createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { SdkLogger } from './logger.js';
import { ATTACH_CLOSE, RENDEZVOUS_PATH, rawBytes } from '../attach.js';
import { MAX_FRAME_BYTES } from '../protocol.js';
import { refuseUpgrade } from './agent-server.js';

export const RENDEZVOUS_PEER_WAIT_MS = 5 * 60_000;
export const RENDEZVOUS_HIGH_WATER_BYTES = 1024 * 1024;
export const RENDEZVOUS_MAX_LIFE_MS = 24 * 60 * 60_000;

export type RendezvousSide = 'cli' | 'agent';

export interface RendezvousTicket {
  id: string;
  /** The CLI's bearer secret (in the answer to the developer). */
  cliSecret: string;
  /** The agent's bearer secret (in the dyno's spec). */
  agentSecret: string;
}

interface Session {
  id: string;
  label: string;
  digests: Record<RendezvousSide, Buffer>;
  legs: Partial<Record<RendezvousSide, WebSocket>>;
  timer: NodeJS.Timeout;
  lifeTimer?: NodeJS.Timeout;
  /** Bytes sent towards each side and not yet written to its socket. */
  inFlight: Record<RendezvousSide, number>;
  relayed: Record<RendezvousSide, number>;
  ended: boolean;
  onEnd?: (how: { code: number; reason: string }) => void;
}

export interface RendezvousOptions {
  log: SdkLogger;
  peerWaitMs?: number;
  highWaterBytes?: number;
  maxLifeMs?: number;
}

const other = (side: RendezvousSide): RendezvousSide => (side === 'cli' ? 'agent' : 'cli');

export class Rendezvous {
  private readonly sessions = new Map<string, Session>();
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES, perMessageDeflate: false });
  private readonly peerWaitMs: number;
  private readonly highWater: number;
  private readonly maxLifeMs: number;

  constructor(private readonly o: RendezvousOptions) {
    this.peerWaitMs = o.peerWaitMs ?? RENDEZVOUS_PEER_WAIT_MS;
    this.highWater = o.highWaterBytes ?? RENDEZVOUS_HIGH_WATER_BYTES;
    this.maxLifeMs = o.maxLifeMs ?? RENDEZVOUS_MAX_LIFE_MS;
  }

  /** A new session; `label` names it in logs (the app and dyno). `onEnd` is called once, when
   * it ends (both legs closed, a leg missing, or its life over). */
  open(label: string, onEnd?: (how: { code: number; reason: string }) => void): RendezvousTicket {
    const id = randomBytes(16).toString('hex');
    const cliSecret = randomBytes(24).toString('base64url');
    const agentSecret = randomBytes(24).toString('base64url');
    const session: Session = {
      id, label, digests: { cli: digest(cliSecret), agent: digest(agentSecret) }, legs: {},
      timer: setTimeout(() => this.end(session, ATTACH_CLOSE.peerMissing, 'nobody dialled the rendezvous in time'), this.peerWaitMs),
      inFlight: { cli: 0, agent: 0 }, relayed: { cli: 0, agent: 0 }, ended: false,
      ...(onEnd ? { onEnd } : {}),
    };
    session.timer.unref();
    this.sessions.set(id, session);
    return { id, cliSecret, agentSecret };
  }

  /** Ends a session from outside (the dyno could not be placed). */
  cancel(id: string, reason: string): void {
    const s = this.sessions.get(id);
    if (s) this.end(s, ATTACH_CLOSE.peerMissing, reason);
  }

  /** Sessions open now, and the bytes waiting for a slow side (for /healthz). */
  stats(): { sessions: number; inFlightBytes: number } {
    let inFlightBytes = 0;
    for (const s of this.sessions.values()) inFlightBytes += s.inFlight.cli + s.inFlight.agent;
    return { sessions: this.sessions.size, inFlightBytes };
  }

  /** Whether the upgrade is for a rendezvous (then it is answered here). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const path = new URL(req.url ?? '/', 'http://coordinator').pathname;
    if (!path.startsWith(RENDEZVOUS_PATH)) return false;
    socket.on('error', () => undefined);
    const session = this.sessions.get(path.slice(RENDEZVOUS_PATH.length));
    const m = /^Bearer +(\S+)$/i.exec(req.headers.authorization ?? '');
    const presented = m ? digest(m[1]!) : undefined;
    const side = session && presented ? (['cli', 'agent'] as const).find((k) => timingSafeEqual(session.digests[k], presented)) : undefined;
    // An unknown session and a wrong secret are told apart from nothing: both are 401.
    if (!session || !side) {
      refuseUpgrade(socket, 'AUTH_INVALID_TOKEN', 'no rendezvous with this id for this secret');
      return true;
    }
    if (session.legs[side]) {
      refuseUpgrade(socket, 'ATTACH_LEG_TAKEN', `the ${side} leg of this rendezvous is already attached`);
      return true;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.attach(session, side, ws));
    return true;
  }

  /** Closes every session (the coordinator stops or its term ends). */
  close(): void {
    for (const s of [...this.sessions.values()]) this.end(s, 1001, 'the coordinator is going away');
    this.wss.close();
  }

  private attach(s: Session, side: RendezvousSide, ws: WebSocket): void {
    if (s.ended) {
      ws.close(ATTACH_CLOSE.peerMissing, 'the rendezvous ended');
      return;
    }
    s.legs[side] = ws;
    ws.on('error', () => undefined);
    ws.on('close', (code) => {
      if (s.legs[side] !== ws) return;
      delete s.legs[side];
      // A leg that closed on its own ends the session; the other leg hears why (a normal close
      // is passed on as it is: the agent's after the exit message).
      this.end(s, code === 1000 ? 1000 : ATTACH_CLOSE.peerGone, `the ${side} leg closed (${code})`);
    });
    const peer = s.legs[other(side)];
    if (!peer) {
      // The first leg: frames wait for the peer (paused, so the socket stops being read).
      ws.pause();
      return;
    }
    clearTimeout(s.timer);
    s.lifeTimer = setTimeout(() => this.end(s, ATTACH_CLOSE.expired, 'the rendezvous reached its longest life'), this.maxLifeMs);
    s.lifeTimer.unref();
    for (const k of ['cli', 'agent'] as const) this.pipe(s, k);
    peer.resume();
    this.o.log.info({ rendezvous: s.id, label: s.label }, 'rendezvous: both legs attached');
  }

  /** Relays what `from` sends to the other leg, pausing `from` while too much waits. */
  private pipe(s: Session, from: RendezvousSide): void {
    const src = s.legs[from]!;
    const to = other(from);
    src.on('message', (data: RawData, isBinary: boolean) => {
      const dst = s.legs[to];
      if (!dst) return;
      const bytes = rawBytes(data);
      s.inFlight[to] += bytes.length;
      s.relayed[to] += bytes.length;
      dst.send(bytes, { binary: isBinary }, () => {
        s.inFlight[to] -= bytes.length;
        if (s.inFlight[to] < this.highWater / 2 && src.isPaused) src.resume();
      });
      if (s.inFlight[to] > this.highWater && !src.isPaused) src.pause();
    });
  }

  private end(s: Session, code: number, reason: string): void {
    if (s.ended) return;
    s.ended = true;
    clearTimeout(s.timer);
    if (s.lifeTimer) clearTimeout(s.lifeTimer);
    this.sessions.delete(s.id);
    for (const ws of Object.values(s.legs)) {
      // A paused leg would never read the peer's answer to the close (then ws waits 30 s).
      if (ws.isPaused) ws.resume();
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(code, reason.slice(0, 120));
    }
    this.o.log.info({ rendezvous: s.id, label: s.label, code, reason, toCli: s.relayed.cli, toAgent: s.relayed.agent }, 'rendezvous ended');
    s.onEnd?.({ code, reason });
  }
}

function digest(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}
