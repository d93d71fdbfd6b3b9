// Transport: dials the coordinator's WebSocket. The agent only ever dials out; nothing is
// listened for from the network. The bearer token rides on the upgrade request.
import type { IncomingMessage } from 'node:http';
import { WebSocket } from 'ws';
import { LINK_WS_LIMITS } from '../../shared/link-guard.js';

/** TCP + TLS + upgrade on a sane network take well under a second; 10 s is a dead link. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

/** A refused upgrade's body is a small JSON error ({error: {code, message}}); more than this,
 * or slower than REFUSAL_READ_MS, is not worth waiting for: the code only goes into the log. */
export const REFUSAL_BODY_BYTES = 4096;
export const REFUSAL_READ_MS = 1_000;

export interface DialOptions {
  url: string;
  token: string;
  /** PEM CA bundle the coordinator's certificate must chain to (wss). */
  ca?: string | undefined;
  /** PEM client certificate and key, for a coordinator that requires one (mutual TLS). */
  clientCert?: { cert: string; key: string } | undefined;
}

/** Where the link dials: one coordinator (`url`), or several sharing one store (`urls`, tried
 * in turn: url-rotation.ts). Given both, `urls` wins. */
export interface LinkDialOptions extends Omit<DialOptions, 'url'> {
  url?: string;
  urls?: readonly string[];
}

export function dialUrls(o: LinkDialOptions): readonly string[] {
  const urls = o.urls ?? (o.url !== undefined ? [o.url] : []);
  if (urls.length === 0) throw new Error('the coordinator link needs at least one URL');
  return urls;
}

export function dial(o: DialOptions): WebSocket {
  return new WebSocket(o.url, {
    headers: { authorization: `Bearer ${o.token}` },
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    // ws's own payload (1009) and fragment (1008) bounds; shared/link-guard.ts says why.
    ...LINK_WS_LIMITS,
    perMessageDeflate: false,
    ...(o.ca ? { ca: o.ca } : {}),
    ...(o.clientCert ? { cert: o.clientCert.cert, key: o.clientCert.key } : {}),
  });
}

/** Reads a refused upgrade's error code (COORDINATOR_NOT_LEADER, COORDINATOR_SHUTTING_DOWN,
 * AUTH_INVALID_TOKEN) from its body, bounded in bytes and time; `done` gets it, or undefined
 * for a body that is not the coordinator's JSON error. Called once, whatever the body does. */
export function readRefusalCode(res: IncomingMessage, done: (code: string | undefined) => void): void {
  const chunks: Buffer[] = [];
  let bytes = 0;
  let finished = false;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    res.removeAllListeners('data');
    res.resume();
    done(codeOf(Buffer.concat(chunks).toString('utf8')));
  };
  const timer = setTimeout(finish, REFUSAL_READ_MS);
  res.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    if (bytes > REFUSAL_BODY_BYTES) return finish();
    chunks.push(chunk);
  });
  res.once('end', finish);
  res.once('close', finish);
  res.once('error', finish);
}

function codeOf(body: string): string | undefined {
  try {
    const code = (JSON.parse(body) as { error?: { code?: unknown } }).error?.code;
    return typeof code === 'string' && /^[A-Z0-9_]{1,64}$/.test(code) ? code : undefined;
  } catch {
    return undefined;
  }
}
