// Dials the agent's leg of an attached one-off dyno's rendezvous (shared/attach.ts): on the
// coordinator the agent's link is on now (the leader that placed the dyno holds the session),
// with the link's TLS settings, and the leg's own bearer secret from the dyno's spec, never the
// agent's token. A WebSocket of its own, not the link: a developer's 100 MB output must not
// queue log and state traffic behind it (nor the reverse).
import type { WebSocket } from 'ws';
import { RENDEZVOUS_PATH } from '../../shared/attach.js';
import { dial } from './transport.js';

export interface RendezvousDialer {
  dial(session: string, secret: string): WebSocket;
}

export interface RendezvousDialOptions {
  /** The URL the link dials now (its path is replaced by the rendezvous's). */
  currentUrl: () => string;
  ca?: string | undefined;
  clientCert?: { cert: string; key: string } | undefined;
}

/** The link's own dial (TLS, client certificate, ws limits), with the leg's secret as its
 * bearer token. */
export function rendezvousDialer(o: RendezvousDialOptions): RendezvousDialer {
  return {
    dial: (session, secret) => dial({ url: new URL(RENDEZVOUS_PATH + session, o.currentUrl()).toString(), token: secret, ca: o.ca, clientCert: o.clientCert }),
  };
}
