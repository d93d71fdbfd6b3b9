// The dev router on port 0 in front of real HTTP servers standing in for dynos.
import { once } from 'node:events';
import { createServer, request, type IncomingHttpHeaders, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { createRootLogger } from '../../../shared/log.js';
import { appOfHost, DevRouter } from '../../../coordinator/dev-router.js';
import { RouteTable } from '../../../coordinator/route-table.js';

interface Answer { status: number; headers: IncomingHttpHeaders; body: string; json: any }

async function listen(t: Test, handler: RequestListener): Promise<{ server: Server; port: number }> {
  const server = createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  }));
  return { server, port: (server.address() as AddressInfo).port };
}

async function startRouter(t: Test, knownApps: string[] = [], upstreamTimeoutMs = 5_000) {
  const routes = new RouteTable();
  const router = new DevRouter({ routes, knowsApp: (app) => knownApps.includes(app), upstreamTimeoutMs, log: createRootLogger({ level: 'silent' }) });
  t.teardown(() => router.close());
  const { port } = await listen(t, router.handle);
  const send = (app: string, options: { method?: string; path?: string; body?: string } = {}): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method: options.method ?? 'GET', path: options.path ?? '/', agent: false, headers: { host: `${app}.localhost:${port}` } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          let json: unknown;
          try { json = JSON.parse(body); } catch { json = undefined; }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json });
        });
      });
      req.on('error', reject);
      req.end(options.body);
    });
  return { routes, send };
}

const up = (id: string, name: string, port: number) => ({ id, app: 'shop', name, state: 'up' as const, endpoint: { host: '127.0.0.1', port } });

t.test('requests go round-robin, stream both ways, and name the dyno', async (t) => {
  const { routes, send } = await startRouter(t, ['shop']);
  for (const name of ['web.1', 'web.2']) {
    const { port } = await listen(t, (req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        res.writeHead(201, { 'x-seen-forwarded-for': String(req.headers['x-forwarded-for']) });
        res.end(`${name} got ${req.method} ${req.url} ${body}`);
      });
    });
    routes.applyDynoState(up(`shop-${name.replace('.', '-')}`, name, port));
  }
  const a = await send('shop', { method: 'POST', path: '/echo?x=1', body: 'payload' });
  const b = await send('shop', { method: 'POST', path: '/echo?x=1', body: 'payload' });
  t.same([a.headers['x-slipway-dyno'], b.headers['x-slipway-dyno']], ['web.1', 'web.2']);
  t.equal(a.status, 201, "the dyno's status passes through");
  t.equal(a.body, 'web.1 got POST /echo?x=1 payload');
  t.equal(a.headers['x-seen-forwarded-for'], '127.0.0.1');
  t.equal((await send('SHOP')).headers['x-slipway-dyno'], 'web.1', 'host names are case-insensitive');
});

t.test('unknown app 404, app without routes 503 (H14)', async (t) => {
  const { send } = await startRouter(t, ['quiet']);
  t.match(await send('nosuch'), { status: 404, json: { error: { code: 'APP_NOT_FOUND' } } });
  t.match(await send('quiet'), { status: 503, json: { error: { code: 'ROUTER_NO_DYNOS', routerCode: 'H14' } } });
});

t.test('an upstream that refuses the connection gets 502 (H13)', async (t) => {
  const { routes, send } = await startRouter(t, ['shop']);
  const { server, port } = await listen(t, (_req, res) => res.end());
  await new Promise<void>((resolve) => server.close(() => resolve()));
  routes.applyDynoState(up('shop-web-1', 'web.1', port));
  t.match(await send('shop'), { status: 502, json: { error: { code: 'ROUTER_UPSTREAM_FAILED', routerCode: 'H13' } } });
});

t.test('an upstream that does not answer in time gets 504 (H12)', async (t) => {
  const { routes, send } = await startRouter(t, ['shop'], 150);
  const { port } = await listen(t, () => { /* never answers */ });
  routes.applyDynoState(up('shop-web-1', 'web.1', port));
  t.match(await send('shop'), { status: 504, json: { error: { code: 'ROUTER_UPSTREAM_TIMEOUT', routerCode: 'H12' } } });
});

t.test('the app is the first label under .localhost', async (t) => {
  t.equal(appOfHost('shop.localhost:7780'), 'shop');
  t.equal(appOfHost('Shop.LOCALHOST'), 'shop');
  t.equal(appOfHost('localhost:7780'), undefined);
  t.equal(appOfHost('a.b.localhost'), undefined);
  t.equal(appOfHost('shop.example.com'), undefined);
  t.equal(appOfHost(undefined), undefined);
});
