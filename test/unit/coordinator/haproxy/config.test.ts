// The generated HAProxy config and map file (pure). That HAProxy accepts them is
// test/integration/coordinator/haproxy/config.test.ts.
import t from 'tap';
import { appOfBackend, backendName, mapEntries, renderConfig, renderMap, serverAddress, type ConfigInput } from '../../../../coordinator/haproxy/config.js';

const paths = { config: '/w/haproxy.cfg', map: '/w/hosts.map', adminSocket: '/w/admin.sock', masterSocket: '/w/master.sock' };
const input = (over: Partial<ConfigInput> = {}): ConfigInput => ({
  paths, listen: { host: '127.0.0.1', port: 7780 }, hostDomain: 'localhost', upstreamTimeoutMs: 30_000,
  backends: [
    { app: 'shop', servers: [{ name: 'shop-web-2-b', host: '10.0.0.2', port: 5002 }, { name: 'shop-web-1-a', host: '10.0.0.1', port: 5001 }] },
    { app: 'blog', servers: [] },
  ],
  ...over,
});

t.test('the current servers are written into their backends, in a stable order', async (t) => {
  const text = renderConfig(input());
  const lines = text.split('\n').map((l) => l.trim());
  t.ok(lines.indexOf('backend app_blog') < lines.indexOf('backend app_shop'), 'backends by app name');
  const shop = lines.slice(lines.indexOf('backend app_shop'));
  t.same(shop.filter((l) => l.startsWith('server ')), ['server shop-web-1-a 10.0.0.1:5001', 'server shop-web-2-b 10.0.0.2:5002']);
  t.equal(renderConfig(input()), text, 'the same table, the same text');
});

t.test('master-worker with an admin socket that hands over listeners, a bounded old worker', async (t) => {
  const text = renderConfig(input());
  t.match(text, /^global\n {4}master-worker\n/m);
  t.match(text, /stats socket \/w\/admin\.sock mode 600 level admin expose-fd listeners/);
  t.match(text, /hard-stop-after 120s/);
  t.match(text, /bind 127\.0\.0\.1:7780\n/);
  t.match(text, /option http-server-close\n/);
  t.match(text, /option idle-close-on-response\n/);
  t.match(text, /retry-on conn-failure\n/);
  t.notMatch(text, /empty-response|response-timeout/, 'no replay of a request a dyno may have seen');
  t.match(text, /timeout server 30000ms/);
  t.match(text, /map\(\/w\/hosts\.map\)/);
  t.match(text, /balance roundrobin/, 'a dynamic algorithm: add server needs one');
});

t.test("the router's answers carry the dev router's bodies", async (t) => {
  const text = renderConfig(input());
  t.match(text, `string '{"error":{"code":"APP_NOT_FOUND","message":"the router serves Host: <app>.localhost"}}' if !mapped`);
  t.match(text, `lf-string '{"error":{"code":"APP_NOT_FOUND","message":"no such app: %[var(txn.host),field(1,.),json(utf8s)]"}}' if !mapped app_host`);
  t.match(text, `http-request return status 503 content-type "application/json; charset=utf-8" string '{"error":{"code":"ROUTER_NO_DYNOS","message":"app shop has no dyno up to serve the request","routerCode":"H14"}}' if { nbsrv eq 0 } !{ stopping }`);
  t.match(text, /http-error status 502 .*"code":"ROUTER_UPSTREAM_FAILED".*"routerCode":"H13"/);
  t.match(text, /http-error status 504 .*"code":"ROUTER_UPSTREAM_TIMEOUT".*"routerCode":"H12"/);
  t.match(renderConfig(input({ hostDomain: 'apps.example.test' })), "-m reg '^[a-z0-9-]+[.]apps[.]example[.]test$'");
});

t.test('what cannot be written safely is refused or left out', async (t) => {
  t.throws(() => renderConfig(input({ hostDomain: 'x y' })), /domain/);
  t.throws(() => renderConfig(input({ listen: { host: 'localhost', port: 80 } })), /IP address/);
  t.throws(() => renderConfig(input({ backends: [{ app: 'Shop;x', servers: [] }] })), /app name/);
  const text = renderConfig(input({ backends: [{ app: 'shop', servers: [{ name: 'ok', host: 'dyno.example', port: 1 }, { name: 'bad name', host: '10.0.0.1', port: 1 }, { name: 'v6', host: '::1', port: 9 }] }] }));
  t.same(text.split('\n').filter((l) => l.trim().startsWith('server ')).map((l) => l.trim()), ['server v6 [::1]:9']);
});

t.test('addresses, names and the map file', async (t) => {
  t.equal(serverAddress('10.1.2.3', 80), '10.1.2.3:80');
  t.equal(serverAddress('[fd00::1]', 80), '[fd00::1]:80');
  t.equal(serverAddress('host', 80), undefined);
  t.equal(serverAddress('10.1.2.3', 0), undefined);
  t.equal(serverAddress('10.1.2.3', 70000), undefined);
  t.equal(backendName('shop'), 'app_shop');
  t.equal(appOfBackend('app_shop'), 'shop');
  t.equal(appOfBackend('slipway_router'), undefined);
  t.equal(renderMap(mapEntries(['shop', 'blog'], 'localhost')), 'blog.localhost app_blog\nshop.localhost app_shop\n');
});
