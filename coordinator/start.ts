// Start-up of the coordinator: builds the components in dependency order, starts the two
// listeners, and returns their URLs with one close() that undoes everything.
import { AppLogs } from './app-logs.js';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../shared/log.js';
import { AGENT_WS_PATH } from '../shared/protocol.js';
import { AgentServer, type CommandSender } from '../shared/coordinator-sdk/index.js';
import { createAgentApp, type AppStats } from './agent-app.js';
import { AgentRegistry } from './agent-registry.js';
import { formatUrl, type CoordinatorConfig, type ListenAddress } from './config.js';
import { DevRouter } from './dev-router.js';
import { DynoTable } from './dyno-table.js';
import { FormationService } from './formation-service.js';
import { createApiHandler } from './http-api.js';
import { RouteTable } from './route-table.js';
import { SlipwayError } from '../shared/errors.js';

export interface RunningCoordinator {
  apiUrl: string;
  routerUrl: string;
  /** ws:// URL agents dial (path AGENT_WS_PATH). */
  agentUrl: string;
  close(): Promise<void>;
}

export async function startCoordinator(config: CoordinatorConfig, log: Logger): Promise<RunningCoordinator> {
  // 1. State: routes, agents, dynos (the dyno table writes the routes).
  const routes = new RouteTable();
  let lastSeqOf: (agentId: string) => number = () => 0;
  const registry = new AgentRegistry((agentId) => lastSeqOf(agentId));
  const dynos = new DynoTable(routes, (agentId) => registry.address(agentId));

  // 2. The agents' link (shared/coordinator-sdk): handshake, acks, commands. What the
  // messages mean is the AgentApp's (agent-app.ts); formations command through the server.
  const commander: CommandSender = { sendCommand: (agentId, command) => server.sendCommand(agentId, command) };
  const formations = new FormationService({ dynos, registry, commander, log: log.child({ component: 'formation' }) });
  const appStats: AppStats = { staleEvents: 0 };
  const logs = new AppLogs();
  const server = new AgentServer({
    token: config.token, coordinatorId: config.coordinatorId, log: log.child({ component: 'agent-link' }),
    pingIntervalMs: config.timing.pingIntervalMs, commandTimeoutMs: config.timing.commandTimeoutMs,
    app: createAgentApp({ registry, dynos, formations, logs, stats: appStats, log: log.child({ component: 'agent-app' }) }),
  });
  lastSeqOf = (agentId) => server.lastSeq(agentId);

  // 4. Listeners: the API (with the agents' WebSocket on it) and the dev router.
  const defaults = { sizes: config.sizes, defaultStack: config.defaultStack };
  const apiHandler = createApiHandler({ registry, dynos, routes, formations, commander, linkStats: () => ({ ...server.stats(), ...appStats }), logs, defaults, log: log.child({ component: 'api' }) });
  // With TLS, agents dial wss:// (and, with a client CA, must present a certificate from it).
  const apiServer: Server | HttpsServer = config.tls
    ? createHttpsServer({
      cert: config.tls.cert, key: config.tls.key,
      ...(config.tls.clientCa ? { ca: config.tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}),
    }, apiHandler)
    : createServer(apiHandler);
  server.attach(apiServer);
  const router = new DevRouter({
    routes, knowsApp: (app) => formations.knowsApp(app) || dynos.hasApp(app),
    upstreamTimeoutMs: config.timing.upstreamTimeoutMs, log: log.child({ component: 'router' }),
  });
  const routerServer = createServer(router.handle);

  const api = await listen(apiServer, config.listen, '--listen');
  let routerAddress: ListenAddress;
  try {
    routerAddress = await listen(routerServer, config.routerListen, '--router-listen');
  } catch (err) {
    await closeServer(apiServer);
    throw err;
  }

  let closing: Promise<void> | undefined;
  return {
    apiUrl: formatUrl(config.tls ? 'https' : 'http', api),
    routerUrl: formatUrl('http', routerAddress),
    agentUrl: formatUrl(config.tls ? 'wss' : 'ws', api, AGENT_WS_PATH),
    close() {
      closing ??= (async () => {
        await server.close();
        router.close();
        await Promise.all([closeServer(apiServer), closeServer(routerServer)]);
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
