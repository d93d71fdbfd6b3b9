// The router that serves the apps, as the configuration names it: the dev router (Node, the
// demo's default) or HAProxy 2.6 driven through its runtime API (`--router haproxy`,
// coordinator/haproxy/). Both mirror the one route table start.ts owns. Only HAProxy has a
// settle(): the coordinator waits for it before it SIGTERMs a dyno whose route it removed, so
// that the dyno is in drain before it stops (the dev router retires a route's pool
// synchronously, inside the change).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../shared/log.js';
import { SlipwayError } from '../shared/errors.js';
import type { CoordinatorConfig, ListenAddress } from './config.js';
import { DevRouter } from './dev-router.js';
import { HaproxyRouter } from './haproxy/router.js';
import type { RouteTable } from './route-table.js';

export interface AppRouter {
  address: ListenAddress;
  /** Resolves once the router applies every route change made so far (HAProxy only). */
  settle?: () => Promise<void>;
  close(): Promise<void>;
}

export interface AppRouterDeps {
  routes: RouteTable;
  /** Whether an app exists at all, to tell 404 from 503 (the dev router). */
  knowsApp: (app: string) => boolean;
  log: Logger;
}

export async function startAppRouter(config: CoordinatorConfig, deps: AppRouterDeps): Promise<AppRouter> {
  if (config.router === 'haproxy') return startHaproxy(config, deps);
  const router = new DevRouter({ routes: deps.routes, knowsApp: deps.knowsApp, upstreamTimeoutMs: config.timing.upstreamTimeoutMs, log: deps.log });
  const server = createServer(router.handle);
  const address = await listenOn(server, config.routerListen);
  return {
    address,
    close: async () => {
      router.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

async function startHaproxy(config: CoordinatorConfig, deps: AppRouterDeps): Promise<AppRouter> {
  // HAProxy binds its own port: port 0 (tests, the demo) is resolved to a free one first.
  const listen = config.routerListen.port === 0 ? { ...config.routerListen, port: await freePort(config.routerListen.host) } : config.routerListen;
  const router = new HaproxyRouter({
    routes: deps.routes, workDir: config.routerWorkDir ?? '/run/slipway-coordinator/haproxy', listen, log: deps.log,
    upstreamTimeoutMs: config.timing.upstreamTimeoutMs,
  });
  await router.start();
  return { address: listen, settle: () => router.settle(), close: () => router.close() };
}

function listenOn(server: Server, address: ListenAddress): Promise<ListenAddress> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(new SlipwayError('CONFIG_INVALID', `--router-listen ${address.host}:${address.port}: ${err.message}`, { cause: err }));
    server.once('error', onError);
    server.listen(address.port, address.host, () => {
      server.off('error', onError);
      resolve({ host: address.host, port: (server.address() as AddressInfo).port });
    });
  });
}

async function freePort(host: string): Promise<number> {
  const probe = createServer();
  const { port } = await listenOn(probe, { host, port: 0 });
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}
