// The HAProxy router against real HAProxy 2.6 and loopback HTTP servers standing in for dynos:
// route changes through the runtime API with no reload, the host map, the router's own
// answers (the dev router's bodies), drains, reconcile against changes made behind its back,
// settle()'s bound, and a killed HAProxy coming back with its servers.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { RuntimeApi } from '../../../../coordinator/haproxy/runtime-api.js';
import { parseMap, parseServersState } from '../../../../coordinator/haproxy/state.js';
import { startDyno } from './fixtures/dyno.js';
import { eventually, freePort, HAPROXY, haveHaproxy, startRouter, type RouterHarness } from './fixtures/router.js';

const skip = !haveHaproxy && 'no /usr/sbin/haproxy';

async function servers(h: RouterHarness, app: string) {
  return parseServersState(await h.admin.show(`show servers state app_${app}`));
}

t.test('routes added reach their dynos with no reload', { skip }, async (t) => {
  const h = await startRouter(t);
  const a = await startDyno(t, 'web.1');
  h.up('shop', a);
  await h.router.settle(); // a new app: its backend comes with one reload
  const before = await h.proc();
  t.equal(h.router.info().reloads, 1);
  const b = await startDyno(t, 'web.2');
  const c = await startDyno(t, 'web.3');
  h.up('shop', b);
  h.up('shop', c);
  await h.router.settle();
  const seen = new Set<string>();
  for (let i = 0; i < 9; i++) seen.add((await h.send('shop.localhost')).body);
  t.same([...seen].sort(), ['web.1', 'web.2', 'web.3'], 'round-robin over the three dynos');
  const after = await h.proc();
  t.equal(after.reloads, before.reloads, 'no reload for new dynos');
  t.same(after.workers, before.workers, 'the same worker serves');
  t.same((await servers(h, 'shop')).map((s) => [s.name, s.port, s.adminState]).sort(), [['d-web-1', a.port, 0], ['d-web-2', b.port, 0], ['d-web-3', c.port, 0]]);
});

t.test('Host mapping and the router answers of its own, as the dev router', { skip }, async (t) => {
  const h = await startRouter(t);
  const a = await startDyno(t, 'web.1');
  h.up('shop', a);
  await h.router.settle();
  const ok = await h.send('SHOP.localhost:8080');
  t.equal(ok.status, 200, 'case and port do not matter');
  t.equal(ok.body, 'web.1');
  t.equal(ok.headers['x-slipway-dyno'], 'd-web-1');
  t.equal(ok.headers['x-seen-forwarded-for'], '127.0.0.1', 'X-Forwarded-For reaches the dyno');
  t.equal((await h.send('shop.localhost.')).status, 200, 'a trailing dot does not matter');
  t.same(parseMap(await h.admin.show(`show map ${h.workDir}/hosts.map`)), new Map([['shop.localhost', ['app_shop']]]));

  const unknown = await h.send('nope.localhost');
  t.equal(unknown.status, 404);
  t.equal(unknown.headers['content-type'], 'application/json; charset=utf-8');
  t.same(unknown.json, { error: { code: 'APP_NOT_FOUND', message: 'no such app: nope' } });
  const foreign = await h.send('example.com');
  t.same([foreign.status, foreign.json], [404, { error: { code: 'APP_NOT_FOUND', message: 'the router serves Host: <app>.localhost' } }]);
  t.equal((await h.send('a.b.localhost')).status, 404, 'one label before the domain');

  h.stopping('shop', a);
  await h.router.settle();
  const none = await h.send('shop.localhost');
  t.equal(none.status, 503);
  t.same(none.json, { error: { code: 'ROUTER_NO_DYNOS', message: 'app shop has no dyno up to serve the request', routerCode: 'H14' } });
});

t.test('another host domain', { skip }, async (t) => {
  const h = await startRouter(t, { hostDomain: 'apps.example.test' });
  const a = await startDyno(t, 'web.1');
  h.up('shop', a);
  await h.router.settle();
  t.equal((await h.send('shop.apps.example.test')).body, 'web.1');
  t.same((await h.send('shop.localhost')).json.error.message, 'the router serves Host: <app>.apps.example.test');
});

t.test('a removed route drains at once; its server goes once idle', { skip }, async (t) => {
  const h = await startRouter(t);
  const a = await startDyno(t, 'web.1');
  const b = await startDyno(t, 'web.2', 400);
  h.up('shop', a);
  h.up('shop', b);
  await h.router.settle();
  // A slow request in flight on web.2 while its route leaves.
  let slow: Promise<string> | undefined;
  for (let i = 0; i < 4 && !slow; i++) {
    const p = h.send('shop.localhost').then((r) => r.body);
    await sleep(50);
    if (b.inFlight > 0) slow = p;
    else await p;
  }
  t.ok(slow, 'a request is in flight on web.2');
  h.stopping('shop', b);
  await h.router.settle();
  const drained = (await servers(h, 'shop')).find((s) => s.name === 'd-web-2');
  t.equal(drained?.adminState, 0x08, 'web.2 is draining (forced drain) once settle() resolved');
  for (let i = 0; i < 4; i++) t.equal((await h.send('shop.localhost')).body, 'web.1', 'new requests go to web.1 only');
  t.equal(await slow, 'web.2', 'the request in flight finished on web.2');
  await b.stopGracefully(2_000);
  await eventually('web.2 deleted from the backend', async () => !(await servers(h, 'shop')).some((s) => s.name === 'd-web-2'));
  await eventually('no drain left to track', () => h.router.info().draining === 0);
});

t.test('a drained server that keeps its session is removed after drainMaxMs', { skip }, async (t) => {
  const h = await startRouter(t, { drainMaxMs: 600 });
  const a = await startDyno(t, 'web.1', 5_000);
  h.up('shop', a);
  await h.router.settle();
  const stuck = h.send('shop.localhost').then((r) => `${r.status}`, (err: Error) => err.message);
  await eventually('the request is in flight', () => a.inFlight === 1);
  h.stopping('shop', a);
  await h.router.settle();
  const began = Date.now();
  await eventually('the server is deleted', async () => (await servers(h, 'shop')).length === 0, 5_000);
  t.ok(Date.now() - began >= 400, 'not before drainMaxMs');
  t.equal(await stuck, '502', 'the request still in flight is cut, as R12 would cut it');
});

t.test('the periodic reconcile repairs what changed behind the router', { skip }, async (t) => {
  const h = await startRouter(t, { reconcileMs: 300 });
  const a = await startDyno(t, 'web.1');
  const b = await startDyno(t, 'web.2');
  const stray = await startDyno(t, 'stray');
  h.up('shop', a);
  h.up('shop', b);
  await h.router.settle();
  const mapFile = `${h.workDir}/hosts.map`;
  await h.admin.run('del map ' + mapFile + ' shop.localhost');
  await h.admin.run('set server app_shop/d-web-1 state maint');
  await h.admin.run('shutdown sessions server app_shop/d-web-1');
  await h.admin.run('del server app_shop/d-web-1', /Server deleted/);
  await h.admin.run('set server app_shop/d-web-2 addr 127.0.0.1 port 1', /changed/);
  await h.admin.run(`add server app_shop/intruder 127.0.0.1:${stray.port}`, /New server registered/);
  await h.admin.run('enable server app_shop/intruder');
  await h.admin.run('add map ' + mapFile + ' other.localhost app_shop');
  await eventually('the table is back', async () => {
    const now = (await servers(h, 'shop')).map((s) => `${s.name}:${s.port}:${s.adminState}`).sort();
    return now.join(' ') === `d-web-1:${a.port}:0 d-web-2:${b.port}:0`;
  }, 5_000);
  t.same(parseMap(await h.admin.show(`show map ${mapFile}`)), new Map([['shop.localhost', ['app_shop']]]));
  const seen = new Set<string>();
  for (let i = 0; i < 6; i++) seen.add((await h.send('shop.localhost')).body);
  t.same([...seen].sort(), ['web.1', 'web.2']);
});

t.test('settle() is bounded: ROUTER_UNAVAILABLE while HAProxy does not answer', { skip }, async (t) => {
  const h = await startRouter(t, { settleTimeoutMs: 1_000 });
  const a = await startDyno(t, 'web.1');
  h.up('shop', a);
  await h.router.settle();
  const { workers } = await h.proc();
  const worker = workers[0]!;
  process.kill(worker, 'SIGSTOP');
  t.teardown(() => { try { process.kill(worker, 'SIGCONT'); } catch { /* gone */ } });
  const b = await startDyno(t, 'web.2');
  h.up('shop', b);
  await t.rejects(h.router.settle(), { code: 'ROUTER_UNAVAILABLE' });
  process.kill(worker, 'SIGCONT');
  await eventually('the change is applied after all', () => h.router.settle().then(() => true, () => false), 10_000);
  t.ok((await servers(h, 'shop')).some((s) => s.name === 'd-web-2'));
});

for (const victim of ['worker', 'master'] as const) {
  t.test(`HAProxy's ${victim} killed: restarted, its servers back from the config and reconcile`, { skip }, async (t) => {
    const h = await startRouter(t);
    const a = await startDyno(t, 'web.1');
    const b = await startDyno(t, 'web.2');
    h.up('shop', a);
    h.up('shop', b);
    h.up('blog', await startDyno(t, 'blog.1'), 'blog-web-1');
    await h.router.settle();
    const before = await h.proc();
    process.kill(victim === 'master' ? before.masterPid : before.workers[0]!, 'SIGKILL');
    await eventually('a new master serves', () => h.router.info().restarts === 1 && h.router.info().running, 10_000);
    // A route that changed while HAProxy was down is applied after the restart.
    const c = await startDyno(t, 'web.3');
    h.up('shop', c);
    await h.router.settle();
    const after = await h.proc();
    t.not(after.masterPid, before.masterPid, 'another master');
    t.same((await servers(h, 'shop')).map((s) => s.name).sort(), ['d-web-1', 'd-web-2', 'd-web-3']);
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) seen.add((await h.send('shop.localhost')).body);
    t.same([...seen].sort(), ['web.1', 'web.2', 'web.3']);
    t.equal((await h.send('blog.localhost')).body, 'blog.1');
  });
}

t.test('a master left in the work dir by a dead coordinator is stopped before a new one starts', { skip }, async (t) => {
  const workDir = await mkdtemp(join(tmpdir(), 'slipway-hapstale-'));
  const port = await freePort();
  await writeFile(join(workDir, 'stale.cfg'), [
    'global', '    master-worker', `    stats socket ${workDir}/admin.sock mode 600 level admin`,
    'defaults', '    mode http', '    timeout connect 1s', '    timeout client 1s', '    timeout server 1s',
    'frontend stale', `    bind 127.0.0.1:${port}`, '    http-request return status 200 content-type text/plain string stale', '',
  ].join('\n'));
  const stale = spawn(HAPROXY, ['-W', '-S', `${workDir}/master.sock`, '-f', join(workDir, 'stale.cfg')], { stdio: 'ignore' });
  const staleExit = once(stale, 'exit');
  t.teardown(async () => {
    if (stale.exitCode === null && stale.signalCode === null) stale.kill('SIGKILL');
    await rm(workDir, { recursive: true, force: true });
  });
  await eventually('the stale master serves', () => new RuntimeApi(join(workDir, 'master.sock')).show('show proc').then((p) => p.includes('worker'), () => false));
  const h = await startRouter(t, { workDir, listen: { host: '127.0.0.1', port } });
  await staleExit;
  t.pass('the stale master is gone');
  t.same((await h.send('nope.localhost')).status, 404, 'the new router answers on the port');
});

t.test('start() refuses what HAProxy cannot run, with a code', { skip }, async (t) => {
  await t.rejects(startRouter(t, { haproxyBin: '/nonexistent/haproxy' }), { code: 'ROUTER_UNAVAILABLE' });
  await t.rejects(startRouter(t, { hostDomain: 'bad domain' }), { code: 'CONFIG_INVALID' });
  await t.rejects(startRouter(t, { listen: { host: '127.0.0.1', port: 0 } }), { code: 'CONFIG_INVALID' });
  // A port another process holds without SO_REUSEPORT: HAProxy cannot bind it.
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => taken.close(() => resolve())));
  const { port } = taken.address() as AddressInfo;
  await t.rejects(startRouter(t, { listen: { host: '127.0.0.1', port } }), { code: 'ROUTER_UNAVAILABLE', message: /cannot bind|Starting frontend/ });
});
