// Transport: dials the coordinator's WebSocket. The agent only ever dials out; nothing is
// listened for from the network. The bearer token rides on the upgrade request.
import { WebSocket } from 'ws';
import { LINK_WS_LIMITS } from '../../shared/link-guard.js';

/** TCP + TLS + upgrade on a sane network take well under a second; 10 s is a dead link. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

export interface DialOptions {
  url: string;
  token: string;
  /** PEM CA bundle the coordinator's certificate must chain to (wss). */
  ca?: string | undefined;
  /** PEM client certificate and key, for a coordinator that requires one (mutual TLS). */
  clientCert?: { cert: string; key: string } | undefined;
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
