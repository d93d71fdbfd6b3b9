// A syslog+tls:// drain: RFC 5425 syslog over TLS with RFC 6587 octet-counted framing (the
// frames of logplex-frame.ts are already counted), on one connection kept open and dialled
// again when it breaks. A batch is delivered once the socket took all of it (TLS has no
// receipts: as Logplex's syslog drains, what was written before a break may be lost or, after
// the retry, arrive twice); a write not flushed within 10 s, a refused connection or a failed
// handshake is thrown, and the drain retries with backoff (drain.ts). The port defaults to
// 6514 (syslog over TLS).
import { connect, type TLSSocket } from 'node:tls';
import type { DrainBatch, DrainTransport } from './drain.js';

export const SYSLOG_TLS_PORT = 6514;
export const SYSLOG_WRITE_TIMEOUT_MS = 10_000;

export interface SyslogTransportOptions {
  url: string;
  ca?: string;
  timeoutMs?: number;
}

export class SyslogTlsTransport implements DrainTransport {
  private socket: TLSSocket | undefined;
  private connecting: Promise<TLSSocket> | undefined;
  private readonly host: string;
  private readonly port: number;

  constructor(private readonly o: SyslogTransportOptions) {
    const u = new URL(o.url);
    this.host = u.hostname.replace(/^\[|\]$/g, '');
    this.port = u.port === '' ? SYSLOG_TLS_PORT : Number(u.port);
  }

  async deliver(batch: DrainBatch): Promise<'delivered'> {
    const socket = await this.open();
    const timeoutMs = this.o.timeoutMs ?? SYSLOG_WRITE_TIMEOUT_MS;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`the syslog drain took no data for ${timeoutMs} ms`)), timeoutMs);
      const fail = (err: Error): void => {
        clearTimeout(timer);
        socket.off('close', onClose);
        this.drop(socket);
        reject(err);
      };
      const onClose = (): void => fail(new Error('the syslog drain closed the connection'));
      socket.once('close', onClose);
      socket.write(batch.frames.join(''), (err) => {
        if (err) return fail(err);
        clearTimeout(timer);
        socket.off('close', onClose);
        resolve();
      });
    });
    return 'delivered';
  }

  close(): void {
    if (this.socket) this.drop(this.socket);
  }

  private open(): Promise<TLSSocket> {
    if (this.socket && !this.socket.destroyed) return Promise.resolve(this.socket);
    this.connecting ??= new Promise<TLSSocket>((resolve, reject) => {
      const timeoutMs = this.o.timeoutMs ?? SYSLOG_WRITE_TIMEOUT_MS;
      const s = connect({ host: this.host, port: this.port, servername: this.host, ...(this.o.ca ? { ca: this.o.ca } : {}) });
      const timer = setTimeout(() => s.destroy(new Error(`no TLS session with the syslog drain within ${timeoutMs} ms`)), timeoutMs);
      s.once('secureConnect', () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        s.on('error', () => this.drop(s));
        // What the receiver sends is nothing to us; reading keeps its close visible.
        s.resume();
        this.socket = s;
        resolve(s);
      });
      s.once('error', (err: Error) => {
        clearTimeout(timer);
        reject(err);
      });
    }).finally(() => { this.connecting = undefined; });
    return this.connecting;
  }

  private drop(s: TLSSocket): void {
    s.destroy();
    if (this.socket === s) this.socket = undefined;
  }
}
