// Start-up of the coordinator: the store, the leadership campaign, the two listeners, and one
// close() that undoes everything.
//
// What outlives a leadership term is built here: the listeners, the route table the router
// serves (restored from the store at each term's start), the router and the app logs. The
// state a leader acts on is the term's (leader-term.ts). A follower (another coordinator
// holds the lock) answers the agents' upgrades and every API path but /healthz with 503
// COORDINATOR_NOT_LEADER: agents move on to the next URL of their list, a load balancer in
// front of the API health-checks GET /v1/leader. Its router keeps serving the routes it last
// knew (docs/protocol.md, Several coordinators).
import { AppLogs } from './app-logs.js';
import { ApiTokens } from './api-tokens.js';
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../shared/log.js';
import { AGENT_WS_PATH } from '../shared/protocol.js';
import { refuseUpgrade } from '../shared/coordinator-sdk/index.js';
import { formatUrl, type CoordinatorConfig, type ListenAddress } from './config.js';
import { startAppRouter, type AppRouter } from './app-router.js';
import { sendError, sendJson } from './http-json.js';
import { LeaderTerm } from './leader-term.js';
import { Leadership } from './leadership.js';
import { RouteTable } from './route-table.js';
import { openStore } from './store/open-store.js';
import { SlipwayError } from '../shared/errors.js';

/** How often a follower reads the stored routes into its router. */
export const FOLLOWER_ROUTES_MS = 2_000;

export interface RunningCoordinator {
  apiUrl: string;
  routerUrl: string;
  /** ws:// URL agents dial (path AGENT_WS_PATH). */
  agentUrl: string;
  /** 'leader' or 'follower' now. */
  role(): 'leader' | 'follower';
  /** The current term's epoch (0 before the first election). */
  epoch(): number;
  close(): Promise<void>;
}

export async function startCoordinator(config: CoordinatorConfig, log: Logger): Promise<RunningCoordinator> {
  // 1. The store (migrated before anything reads it) and what outlives a term.
  const store = openStore(config, log.child({ component: 'store' }));
  try {
    await store.migrate();
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
  const routes = new RouteTable();
  const logs = new AppLogs();
  let term: LeaderTerm | undefined;
  let router: AppRouter | undefined;

  // 2. The leadership campaign: a term per election.
  const leadership: Leadership = new Leadership({
    store, coordinatorId: config.coordinatorId, log: log.child({ component: 'leadership' }), retryMs: config.timing.leaderRetryMs,
    onElected: async (epoch) => {
      const snapshot = await store.load();
      const settle = router?.settle;
      term = new LeaderTerm({
        config, store, epoch, snapshot, routes, logs, log, onFenced: () => leadership.fenced(),
        ...(settle ? { routesSettled: settle } : {}),
      });
    },
    onDeposed: async () => {
      const ending = term;
      term = undefined;
      await ending?.close();
    },
  });

  // A follower's router serves the routes the leader stored, refreshed every
  // FOLLOWER_ROUTES_MS: a client that reaches it (a front load balancer that spreads router
  // traffic over every coordinator) is sent where the leader's router sends it, a refresh
  // behind. Within a term, the leader's own table is the truth and nothing is read.
  const followerRoutes = setInterval(() => {
    if (term) return;
    store.routes().then((stored) => {
      if (term) return;
      const keep = new Set(stored.map((r) => `${r.app}\u0000${r.dynoId}`));
      routes.retain((route, app) => keep.has(`${app}\u0000${route.dynoId}`));
      for (const r of stored) routes.applyDynoState({ id: r.dynoId, app: r.app, name: r.name, state: 'up', endpoint: { host: r.host, port: r.port } });
    }).catch((err: unknown) => log.debug({ err }, 'follower: reading the routes failed'));
  }, FOLLOWER_ROUTES_MS);
  followerRoutes.unref();

  // 3. The API with the agents' WebSocket on it (the term's, or a refusal).
  const followerApi = (req: IncomingMessage, res: ServerResponse): void => {
    const path = new URL(req.url ?? '/', 'http://coordinator').pathname;
    const role = { role: 'follower', coordinatorId: config.coordinatorId, store: { kind: store.kind } };
    if (path === '/healthz') return sendJson(res, 200, { ok: true, leadership: role });
    sendError(res, 'COORDINATOR_NOT_LEADER', `coordinator ${config.coordinatorId} is a follower: ask the leader`, {}, { 'retry-after': '1' });
  };
  // Every request passes the token check first, on the leader and on a follower alike.
  const tokens = new ApiTokens(config.apiTokens);
  const apiHandler: RequestListener = (req, res) => {
    const path = new URL(req.url ?? '/', 'http://coordinator').pathname;
    if (!tokens.allows(req, path)) {
      return sendError(res, 'AUTH_INVALID_TOKEN', 'the API needs Authorization: Bearer TOKEN with one of the coordinator\'s API tokens', {}, { 'www-authenticate': 'Bearer realm="slipway"' });
    }
    return term ? term.api(req, res) : followerApi(req, res);
  };
  const apiServer: Server | HttpsServer = config.tls
    ? createHttpsServer({
      cert: config.tls.cert, key: config.tls.key,
      ...(config.tls.clientCa ? { ca: config.tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}),
    }, apiHandler)
    : createServer(apiHandler);
  apiServer.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // An attached one-off's legs (RENDEZVOUS_PATH), else an agent's link.
    if (term) {
      if (!term.rendezvous.handleUpgrade(req, socket, head)) term.server.handleUpgrade(req, socket, head);
      return;
    }
    socket.on('error', () => undefined);
    refuseUpgrade(socket, 'COORDINATOR_NOT_LEADER', `coordinator ${config.coordinatorId} is a follower: dial the next coordinator`, 1);
  });

  // 4. The router first (a term's first stop waits for its settle()), then the campaign, then
  // the API.
  let api: ListenAddress;
  try {
    router = await startAppRouter(config, {
      routes, knowsApp: (app) => routes.hasRoutes(app) || (term !== undefined && (term.formations.knowsApp(app) || term.dynos.hasApp(app))),
      log: log.child({ component: 'router' }),
    });
    await leadership.start();
    api = await listen(apiServer, config.listen, '--listen');
  } catch (err) {
    clearInterval(followerRoutes);
    await leadership.close().catch(() => undefined);
    await router?.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    throw err;
  }
  const routerAddress = router.address;

  let closing: Promise<void> | undefined;
  return {
    apiUrl: formatUrl(config.tls ? 'https' : 'http', api),
    routerUrl: formatUrl('http', routerAddress),
    agentUrl: formatUrl(config.tls ? 'wss' : 'ws', api, AGENT_WS_PATH),
    role: () => leadership.role,
    epoch: () => leadership.epoch,
    close() {
      closing ??= (async () => {
        clearInterval(followerRoutes);
        await leadership.close();
        await Promise.all([router?.close(), closeServer(apiServer)]);
        await store.close();
      })();
      return closing;
    },
  };
}

function listen(server: Server | HttpsServer, address: ListenAddress, flag: string): Promise<ListenAddress> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(new SlipwayError('CONFIG_INVALID', `${flag} ${address.host}:${address.port}: ${err.message}`, { cause: err }));
    server.once('error', onError);
    server.listen(address.port, address.host, () => {
      server.off('error', onError);
      const bound = server.address() as AddressInfo;
      resolve({ host: address.host, port: bound.port });
    });
  });
}

/** Stops accepting, then ends idle and active HTTP connections so close() does not hang on
 * keep-alive clients. */
function closeServer(server: Server | HttpsServer): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
