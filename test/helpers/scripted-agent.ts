// A scripted agent on a real WebSocket to a real coordinator: it says hello with the dynos it
// claims to run, answers commands (a started dyno is `up` at once, with an endpoint), sends
// numbered events and records the coordinator's acks. For coordinator tests that need an
// agent's side of the protocol without a host: leadership, failover, placement.
import { EventEmitter, once } from 'node:events';
import { WebSocket } from 'ws';
import type { CoordinatorMessage, DynoStatus, Welcome } from '../../shared/protocol.js';

const MIB = 1024 * 1024;

export interface ScriptedAgent {
  id: string;
  welcome: Welcome;
  received: CoordinatorMessage[];
  /** The dynos this agent runs (started by the coordinator's commands, or given at hello). */
  dynos: Map<string, DynoStatus>;
  /** Highest seq acknowledged on this link. */
  acked(): number;
  /** Sends a dyno_state event with `seq`. */
  sendState(seq: number, dyno: DynoStatus, from: DynoStatus['state'] | null): void;
  /** Resolves with the first ack covering `seq`, or rejects after `ms`. */
  waitAck(seq: number, ms?: number): Promise<void>;
  /** Resolves once the link closed (with the close code). */
  closed: Promise<number>;
  close(): Promise<void>;
}

export interface ScriptedAgentOptions {
  url: string;
  token: string;
  id?: string;
  seqEpoch?: string;
  zone?: string;
  dynos?: DynoStatus[];
  allocatableMb?: number;
  /** Where the dynos it starts listen (default 127.0.0.1:5000, where nothing does). */
  endpoint?: { host: string; port: number };
}

export async function connectScriptedAgent(o: ScriptedAgentOptions, timeoutMs = 10_000): Promise<ScriptedAgent> {
  const id = o.id ?? 'host-a';
  const dynos = new Map((o.dynos ?? []).map((d) => [d.id, d]));
  const ws = new WebSocket(o.url, { headers: { authorization: `Bearer ${o.token}` }, handshakeTimeout: timeoutMs });
  const received: CoordinatorMessage[] = [];
  const inbox = new EventEmitter();
  let ackedSeq = 0;
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  ws.on('error', () => undefined);
  ws.on('message', (data) => {
    const m = JSON.parse((data as Buffer).toString('utf8')) as CoordinatorMessage;
    received.push(m);
    if (m.type === 'ack') ackedSeq = Math.max(ackedSeq, m.seq);
    inbox.emit(m.type, m);
    if (m.type === 'start_dyno') {
      const { id: dynoId, app, type, name, size } = m.dyno;
      const dyno: DynoStatus = { id: dynoId, app, type, name, state: 'up', memoryMb: size.memoryMb, since: new Date().toISOString(), endpoint: o.endpoint ?? { host: '127.0.0.1', port: 5000 } };
      dynos.set(dynoId, dyno);
      ws.send(JSON.stringify({ type: 'result', id: m.id, ok: true, dyno }));
    }
    if (m.type === 'stop_dyno') {
      dynos.delete(m.dynoId);
      ws.send(JSON.stringify({ type: 'result', id: m.id, ok: true }));
    }
  });
  const opened = once(ws, 'open');
  const timer = setTimeout(() => ws.terminate(), timeoutMs);
  try {
    await opened;
    const welcomed = once(inbox, 'welcome');
    const allocatable = (o.allocatableMb ?? 4096) * MIB;
    ws.send(JSON.stringify({
      type: 'hello', protocol: 1, seqEpoch: o.seqEpoch ?? 'epoch-0001',
      agent: { id, hostname: `${id}.internal`, address: '127.0.0.1', version: '0.1.0', runtime: 'fake', ...(o.zone ? { zone: o.zone } : {}) },
      capacity: {
        memory: { totalBytes: allocatable + 1024 * MIB, reservedBytes: 1024 * MIB, allocatableBytes: allocatable, committedBytes: [...dynos.values()].reduce((n, d) => n + d.memoryMb * MIB, 0), usedBytes: 0 },
        cpu: { cores: 2, load1: 0 }, dynoCount: dynos.size, slugCache: { entries: 0, bytes: 0, budgetBytes: 0, freeBytes: 0, slugs: [] }, accepting: true,
      },
      dynos: [...dynos.values()],
    }));
    const [welcome] = (await welcomed) as [Welcome];
    clearTimeout(timer);
    return {
      id, welcome, received, dynos,
      acked: () => ackedSeq,
      sendState(seq, dyno, from) {
        ws.send(JSON.stringify({ type: 'event', seq, at: new Date().toISOString(), event: { kind: 'dyno_state', from, dyno } }));
      },
      waitAck(seq, ms = 10_000) {
        if (ackedSeq >= seq) return Promise.resolve();
        return new Promise((resolve, reject) => {
          const t = setTimeout(() => { inbox.off('ack', onAck); reject(new Error(`no ack of seq ${seq} within ${ms} ms (acked ${ackedSeq})`)); }, ms);
          const onAck = (): void => {
            if (ackedSeq < seq) return;
            clearTimeout(t);
            inbox.off('ack', onAck);
            resolve();
          };
          inbox.on('ack', onAck);
        });
      },
      closed,
      async close() {
        if (ws.readyState === WebSocket.CLOSED) return;
        ws.terminate();
        await closed;
      },
    };
  } catch (err) {
    clearTimeout(timer);
    ws.terminate();
    throw err;
  }
}
