// The HAProxy router under a steady request load (8 keep-alive clients, about 300 requests a
// second, each run bounded in count and time): scale-up, scale-down, a release change and a
// reload for a new app's backend in the middle of traffic drop no request; a dyno crash fails
// at most the requests that were in flight on it. Route changes follow the coordinator's
// order: a new dyno's route appears once it is `up`; an old dyno's route leaves first, the
// coordinator waits for settle(), and only then the dyno gets SIGTERM (stopGracefully).
import t, { type Test } from 'tap';
import { parseServersState } from '../../../../coordinator/haproxy/state.js';
import { startDyno } from './fixtures/dyno.js';
import { startLoad, type LoadSummary } from './fixtures/load.js';
import { eventually, haveHaproxy, startRouter, type RouterHarness } from './fixtures/router.js';

const skip = !haveHaproxy && 'no /usr/sbin/haproxy';
const LOAD = { clients: 8, rps: 300, maxRequests: 20_000, maxMs: 60_000 };

function report(t: Test, s: LoadSummary): void {
  t.comment(`${s.total} requests in ${s.ms} ms, ${s.failures.length} failed, by dyno ${JSON.stringify(s.byDyno)}`);
  if (s.failures.length > 0) t.comment(`failures: ${JSON.stringify(s.failures.slice(0, 5))}`);
}

/** Counters of one server of app_shop from `show stat`. */
async function serverStats(h: RouterHarness, server: string): Promise<Record<'stot' | 'scur' | 'wredis' | 'hrsp_2xx', number>> {
  const [header, ...rows] = (await h.admin.show('show stat app_shop 4 -1')).trim().split('\n');
  const names = header!.replace(/^#\s*/, '').split(',');
  const row = rows.map((r) => r.split(',')).find((f) => f[1] === server)!;
  const field = (name: string): number => Number(row[names.indexOf(name)] || 0);
  return { stot: field('stot'), scur: field('scur'), wredis: field('wredis'), hrsp_2xx: field('hrsp_2xx') };
}

async function serverNames(h: RouterHarness, app: string): Promise<string[]> {
  return parseServersState(await h.admin.show(`show servers state app_${app}`)).map((s) => s.name).sort();
}

t.test('scale-up under load: no failed request, no reload', { skip }, async (t) => {
  const h = await startRouter(t);
  const web1 = await startDyno(t, 'web.1');
  h.up('shop', web1);
  await h.router.settle();
  const before = await h.proc();
  const load = startLoad({ port: h.port, host: 'shop.localhost', ...LOAD });
  await load.answered(300);
  const web2 = await startDyno(t, 'web.2');
  const web3 = await startDyno(t, 'web.3');
  h.up('shop', web2);
  await h.router.settle();
  await load.answered(300);
  h.up('shop', web3);
  await h.router.settle();
  await load.answered(600);
  const s = await load.stop();
  report(t, s);
  t.equal(s.failures.length, 0, 'no failed request');
  t.ok((s.byDyno['web.2'] ?? 0) > 50 && (s.byDyno['web.3'] ?? 0) > 50, 'the new dynos take requests');
  const after = await h.proc();
  t.same([after.reloads, after.workers], [before.reloads, before.workers], 'no reload, same worker');
});

t.test('scale-down under load: drained before SIGTERM, no failed request', { skip }, async (t) => {
  const h = await startRouter(t);
  const dynos = await Promise.all(['web.1', 'web.2', 'web.3'].map((n) => startDyno(t, n)));
  for (const d of dynos) h.up('shop', d);
  await h.router.settle();
  const load = startLoad({ port: h.port, host: 'shop.localhost', ...LOAD });
  await load.answered(300);
  const [, web2, web3] = dynos as [unknown, Awaited<ReturnType<typeof startDyno>>, Awaited<ReturnType<typeof startDyno>>];
  let mark = 0;
  for (const victim of [web3, web2]) {
    h.stopping('shop', victim);
    await h.router.settle();
    // Every request sent from here on must go elsewhere.
    mark = await load.mark();
    // SIGTERM: the dyno finishes what is in flight and closes; with no connection left to it
    // from the router, that is prompt.
    await victim.stopGracefully(3_000);
    await load.answered(300);
  }
  const s = await load.stop();
  report(t, s);
  t.equal(s.failures.length, 0, 'no failed request');
  const after = s.sequence.slice(mark);
  t.ok(after.length >= 300);
  t.same(after.filter((d) => d !== 'web.1'), [], 'after the last drain, web.1 alone serves');
  await eventually('the drained servers are deleted', async () => (await serverNames(h, 'shop')).join() === 'd-web-1');
});

t.test('a release change under load: new dynos up, then old ones drained and stopped', { skip }, async (t) => {
  const h = await startRouter(t);
  const v1 = await Promise.all(['web.1', 'web.2'].map((n) => startDyno(t, `v1-${n}`)));
  for (const [i, d] of v1.entries()) h.up('shop', d, `shop-web-${i + 1}-v1aaaa`);
  await h.router.settle();
  const load = startLoad({ port: h.port, host: 'shop.localhost', ...LOAD });
  await load.answered(300);
  // Preboot: the new release's dynos boot and become routable first.
  const v2 = await Promise.all(['web.1', 'web.2'].map((n) => startDyno(t, `v2-${n}`)));
  for (const [i, d] of v2.entries()) h.up('shop', d, `shop-web-${i + 1}-v2bbbb`);
  await h.router.settle();
  await load.answered(200);
  // Only then do the old dynos leave the route table, and get SIGTERM after settle().
  for (const [i, d] of v1.entries()) h.stopping('shop', d, `shop-web-${i + 1}-v1aaaa`);
  await h.router.settle();
  const mark = await load.mark();
  await Promise.all(v1.map((d) => d.stopGracefully(3_000)));
  await load.answered(400);
  const s = await load.stop();
  report(t, s);
  t.equal(s.failures.length, 0, 'no failed request');
  t.same(s.sequence.slice(mark).filter((d) => !d.startsWith('v2-')), [], 'after the drain, the new release alone serves');
  t.ok(v2.every((d) => d.served > 50), 'both new dynos serve');
  await eventually('the old servers are deleted', async () => (await serverNames(h, 'shop')).join() === 'shop-web-1-v2bbbb,shop-web-2-v2bbbb');
});

t.test('a reload for new apps in the middle of traffic: no failed request', { skip }, async (t) => {
  const h = await startRouter(t);
  for (const n of ['web.1', 'web.2']) h.up('shop', await startDyno(t, n));
  await h.router.settle();
  const load = startLoad({ port: h.port, host: 'shop.localhost', ...LOAD });
  await load.answered(300);
  const before = await h.proc();
  for (const app of ['blog', 'wiki', 'shop2']) {
    h.up(app, await startDyno(t, `${app}.1`), `${app}-web-1-x`);
    await h.router.settle();
    await load.answered(200);
  }
  const after = await h.proc();
  const s = await load.stop();
  report(t, s);
  t.equal(s.failures.length, 0, 'no failed request');
  t.equal(after.reloads, before.reloads + 3, 'one reload per new app');
  t.not(after.workers[0], before.workers[0], 'a new worker serves');
  t.equal((await h.send('wiki.localhost')).body, 'wiki.1');
  t.same(await serverNames(h, 'shop'), ['d-web-1', 'd-web-2'], 'the runtime-added servers survived the reloads (written into the config)');
});

t.test('a dyno crash under load: only its in-flight requests may fail', { skip }, async (t) => {
  const h = await startRouter(t);
  const dynos = await Promise.all(['web.1', 'web.2', 'web.3'].map((n) => startDyno(t, n)));
  for (const d of dynos) h.up('shop', d);
  await h.router.settle();
  const load = startLoad({ port: h.port, host: 'shop.localhost', ...LOAD });
  await load.answered(300);
  const web3 = dynos[2]!;
  const before = await serverStats(h, 'd-web-3');
  t.ok(before.stot - before.wredis - before.hrsp_2xx <= before.scur, 'before the crash, every request web.3 had is answered or in flight');
  const crashAt = Date.now() - load.startedAt;
  web3.crash();
  // Until the agent reports the crash, the route stays: connections to web.3 are refused
  // and those requests go to another dyno (retry-on conn-failure, redispatch).
  await load.answered(300);
  // HAProxy's count for web.3: its sessions (stot), those redispatched to another dyno after
  // a refused connection (wredis), and its answers (hrsp_2xx). A session neither
  // redispatched nor answered is a request that was in flight on web.3 when it crashed.
  const after = await serverStats(h, 'd-web-3');
  const cut = after.stot - after.wredis - after.hrsp_2xx;
  const redispatched = after.wredis - before.wredis;
  h.stopping('shop', web3); // the agent's `crashed`
  await h.router.settle();
  await load.answered(300);
  const s = await load.stop();
  report(t, s);
  t.comment(`on web.3: ${cut} requests cut by the crash, ${redispatched} refused and redispatched`);
  t.ok(redispatched > 0, 'requests to the crashed dyno went elsewhere');
  t.ok(s.failures.length <= cut, `every failed request (${s.failures.length}) was one in flight on web.3 (${cut})`);
  t.same(s.failures.filter((f) => f.at > crashAt), [], 'every request sent after the crash succeeded');
  // A request cut on a dyno answers 502 (H13), except on a client connection that already
  // carried requests: there HAProxy closes the connection without an answer (what it does
  // when a server drops a reused request, so that a client may retry it).
  for (const f of s.failures) t.ok(f.status === 502 || f.error === 'socket hang up' || f.error === 'read ECONNRESET', `a cut request: ${JSON.stringify(f)}`);
  await eventually('the crashed server is deleted', async () => (await serverNames(h, 'shop')).join() === 'd-web-1,d-web-2');
});
