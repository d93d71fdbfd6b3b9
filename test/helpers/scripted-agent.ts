// A scripted agent on a real WebSocket to a real coordinator: it says hello with the dynos it
// claims to run, answers commands (a started dyno is `up` at once, with an endpoint), sends
// numbered events and records the coordinator's acks. For coordinator tests that need an
// agent's side of the protocol without a host: leadership, failover, placement. With onStart
// and onStop its dynos can be real (test/integration/coordinator/app-router.test.ts: HTTP
// servers behind HAProxy), stopped in the agent's order: `stopping`, SIGTERM, `down`.
import { EventEmitter, once } from 'node:events';
import { WebSocket } from 'ws';
import type { CoordinatorMessage, DynoSpec, DynoStatus, Endpoint, Welcome } from '../../shared/protocol.js';

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
  /** Sends a dyno_state event with the next seq (one above every seq sent so far); returns it. */
  sendNext(dyno: DynoStatus, from: DynoStatus['state'] | null): number;
  /** Resolves with the first ack covering `seq`, or rejects after `ms`. */
  waitAck(seq: number, ms?: number): Promise<void>;
  /** Sends a `logs` batch (at most 1000 lines), as the agent's log shipper does. */
  sendLogs(lines: { dynoId: string; app: string; line: string }[], dropped?: number): void;
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
  /** Runs a dyno start_dyno asked for (a real server, say) and resolves with where it
   * listens: the result then reports it `up` there (as the agent does once its port accepts).
   * A rejection is answered as the agent's refusal (INTERNAL). Default: `endpoint`, at once. */
  onStart?: (spec: DynoSpec) => Promise<Endpoint>;
  /** Stops a dyno stop_dyno asked for, as the agent does after SIGTERM. With it, the agent
   * answers the command, sends `stopping`, awaits this, then sends `down` (exit 0). */
  onStop?: (dynoId: string, graceMs: number | undefined) => Promise<void>;
}

export async function connectScriptedAgent(o: ScriptedAgentOptions, timeoutMs = 10_000): Promise<ScriptedAgent> {
  const id = o.id ?? 'host-a';
  const dynos = new Map((o.dynos ?? []).map((d) => [d.id, d]));
  const ws = new WebSocket(o.url, { headers: { authorization: `Bearer ${o.token}` }, handshakeTimeout: timeoutMs });
  const received: CoordinatorMessage[] = [];
  const inbox = new EventEmitter();
  let ackedSeq = 0;
  let sentSeq = 0;
  const send = (m: unknown): void => {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(m));
  };
  const sendState = (seq: number, dyno: DynoStatus, from: DynoStatus['state'] | null): void => {
    sentSeq = Math.max(sentSeq, seq);
    send({ type: 'event', seq, at: new Date().toISOString(), event: { kind: 'dyno_state', from, dyno } });
  };
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  ws.on('error', () => undefined);
  ws.on('message', (data) => {
    const m = JSON.parse((data as Buffer).toString('utf8')) as CoordinatorMessage;
    received.push(m);
    if (m.type === 'ack') ackedSeq = Math.max(ackedSeq, m.seq);
    inbox.emit(m.type, m);
    if (m.type === 'start_dyno' && o.onStart) {
      const spec = m.dyno;
      o.onStart(spec).then((endpoint) => {
        const dyno: DynoStatus = { id: spec.id, app: spec.app, type: spec.type, name: spec.name, state: 'up', memoryMb: spec.size.memoryMb, since: new Date().toISOString(), endpoint };
        dynos.set(spec.id, dyno);
        send({ type: 'result', id: m.id, ok: true, dyno });
      }, (err: unknown) => {
        send({ type: 'result', id: m.id, ok: false, error: { code: 'INTERNAL', message: String(err), retryable: false } });
      });
    } else if (m.type === 'start_dyno') {
      const { id: dynoId, app, type, name, size } = m.dyno;
      const dyno: DynoStatus = { id: dynoId, app, type, name, state: 'up', memoryMb: size.memoryMb, since: new Date().toISOString(), endpoint: o.endpoint ?? { host: '127.0.0.1', port: 5000 } };
      dynos.set(dynoId, dyno);
      ws.send(JSON.stringify({ type: 'result', id: m.id, ok: true, dyno }));
    }
    if (m.type === 'stop_dyno' && o.onStop) {
      const onStop = o.onStop;
      const dyno = dynos.get(m.dynoId);
      send({ type: 'result', id: m.id, ok: true });
      if (dyno) {
        const { endpoint: _endpoint, ...rest } = dyno;
        const stopping: DynoStatus = { ...rest, state: 'stopping', since: new Date().toISOString() };
        dynos.set(dyno.id, stopping);
        sendState(sentSeq + 1, stopping, dyno.state);
        void onStop(m.dynoId, m.graceMs).catch(() => undefined).then(() => {
          dynos.delete(m.dynoId);
          sendState(sentSeq + 1, { ...stopping, state: 'down', since: new Date().toISOString(), exit: { code: 0, signal: null } }, 'stopping');
        });
      }
    } else if (m.type === 'stop_dyno') {
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
        sentSeq = Math.max(sentSeq, seq);
      },
      sendLogs(lines, dropped = 0) {
        ws.send(JSON.stringify({ type: 'logs', lines, dropped }));
      },
      sendNext(dyno, from) {
        const seq = sentSeq + 1;
        sendState(seq, dyno, from);
        return seq;
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
