// An HTTPS drain as Logplex delivers to one: each batch is one POST of its octet-counted frames
// with
//   Content-Type: application/logplex-1
//   Logplex-Msg-Count: frames in the body
//   Logplex-Frame-Id: the batch's id, the same on every retry (the receiver de-duplicates)
//   Logplex-Drain-Token: the drain's token (d.<uuid>), which the receiver may check
// and the URL's user:password as Basic authorization when it has one. A 2xx is delivered; any
// other 4xx but 429 is rejected (dropped, not retried); anything else, a timeout (10 s for the
// whole answer) or a connection that fails is thrown, so the drain retries (drain.ts).
import { request } from 'node:https';
import type { DrainBatch, DrainTransport } from './drain.js';

export const HTTPS_DRAIN_TIMEOUT_MS = 10_000;

export interface HttpsTransportOptions {
  url: string;
  drainToken: string;
  /** PEM of CAs to trust besides the system's (a private log service; tests). */
  ca?: string;
  timeoutMs?: number;
}

export class HttpsTransport implements DrainTransport {
  private readonly url: URL;
  private readonly auth: string | undefined;
  private readonly pending = new Set<{ destroy(): void }>();

  constructor(private readonly o: HttpsTransportOptions) {
    const u = new URL(o.url);
    this.auth = u.username !== '' ? `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}` : undefined;
    u.username = '';
    u.password = '';
    this.url = u;
  }

  deliver(batch: DrainBatch): Promise<'delivered' | 'rejected'> {
    const body = batch.frames.join('');
    const timeoutMs = this.o.timeoutMs ?? HTTPS_DRAIN_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      const req = request(this.url, {
        method: 'POST', agent: false,
        headers: {
          'content-type': 'application/logplex-1', 'content-length': Buffer.byteLength(body),
          'logplex-msg-count': String(batch.frames.length), 'logplex-frame-id': batch.frameId,
          'logplex-drain-token': this.o.drainToken, 'user-agent': 'slipway-logplex/1',
          ...(this.auth ? { authorization: this.auth } : {}),
        },
        ...(this.o.ca ? { ca: this.o.ca } : {}),
      }, (res) => {
        res.resume();
        res.on('end', () => {
          clearTimeout(timer);
          this.pending.delete(req);
          const s = res.statusCode ?? 0;
          if (s >= 200 && s < 300) resolve('delivered');
          else if (s >= 400 && s < 500 && s !== 429) resolve('rejected');
          else reject(new Error(`the drain answered HTTP ${s}`));
        });
      });
      this.pending.add(req);
      const timer = setTimeout(() => req.destroy(new Error(`the drain did not answer within ${timeoutMs} ms`)), timeoutMs);
      req.on('error', (err) => {
        clearTimeout(timer);
        this.pending.delete(req);
        reject(err);
      });
      req.end(body);
    });
  }

  close(): void {
    for (const r of this.pending) r.destroy();
    this.pending.clear();
  }
}
