// The reconcile rules, one test each: routes vs HAProxy's servers, the host map, and the
// runtime API commands of each step.
import t from 'tap';
import { commandsOf, planBackend, planMap, type BackendPlanInput } from '../../../../coordinator/haproxy/reconcile.js';
import type { ServerState } from '../../../../coordinator/haproxy/state.js';

const be = 'app_shop';
const server = (name: string, port: number, adminState = 0, addr = '127.0.0.1'): ServerState => ({ backend: be, name, addr, port, opState: 2, adminState });
const route = (name: string, port: number, host = '127.0.0.1') => ({ name, host, port });
const plan = (over: Partial<BackendPlanInput>) => planBackend({ backend: be, routes: [], servers: [], drainingSince: new Map(), now: 10_000, drainMaxMs: 35_000, ...over });

t.test('a route without a server is added, then enabled', async (t) => {
  t.same(plan({ routes: [route('d1', 5001), route('d6', 5006, '::1')] }), [
    { kind: 'add', backend: be, server: 'd1', address: '127.0.0.1:5001' },
    { kind: 'add', backend: be, server: 'd6', address: '[::1]:5006' },
  ]);
  t.same(commandsOf({ kind: 'add', backend: be, server: 'd1', address: '127.0.0.1:5001' }, '/w/hosts.map').map((c) => c.line),
    ['add server app_shop/d1 127.0.0.1:5001', 'enable server app_shop/d1']);
});

t.test('a server in service for its route: nothing to do', async (t) => {
  t.same(plan({ routes: [route('d1', 5001)], servers: [server('d1', 5001)] }), []);
  t.same(plan({ routes: [route('d6', 5006, '[::1]')], servers: [server('d6', 5006, 0, '::1')] }), [], 'IPv6 in brackets or not');
});

t.test('a moved endpoint: the address is fixed in place', async (t) => {
  t.same(plan({ routes: [route('d1', 5002)], servers: [server('d1', 5001)] }), [{ kind: 'address', backend: be, server: 'd1', host: '127.0.0.1', port: 5002 }]);
  t.same(commandsOf({ kind: 'address', backend: be, server: 'd1', host: '127.0.0.1', port: 5002 }, '').map((c) => c.line), ['set server app_shop/d1 addr 127.0.0.1 port 5002']);
});

t.test('a route back on a drained or maintained server: ready again', async (t) => {
  t.same(plan({ routes: [route('d1', 5001)], servers: [server('d1', 5001, 0x08)] }), [{ kind: 'ready', backend: be, server: 'd1' }]);
  t.same(plan({ routes: [route('d1', 5001)], servers: [server('d1', 5001, 0x01)] }), [{ kind: 'ready', backend: be, server: 'd1' }]);
});

t.test('a server without a route drains first', async (t) => {
  t.same(plan({ servers: [server('d1', 5001)] }), [{ kind: 'drain', backend: be, server: 'd1' }]);
  t.same(commandsOf({ kind: 'drain', backend: be, server: 'd1' }, '').map((c) => c.line), ['set server app_shop/d1 state drain']);
});

t.test('a drained server goes once idle, or after drainMaxMs; not before', async (t) => {
  const drained = [server('d1', 5001, 0x08)];
  const busy = new Map([['app_shop/d1', { current: 2, queued: 0 }]]);
  const idle = new Map([['app_shop/d1', { current: 0, queued: 0 }]]);
  const queued = new Map([['app_shop/d1', { current: 0, queued: 1 }]]);
  const since = new Map([['app_shop/d1', 9_000]]);
  t.same(plan({ servers: drained, sessions: busy, drainingSince: since }), [], 'sessions in flight: keep');
  t.same(plan({ servers: drained, sessions: queued, drainingSince: since }), [], 'a queue: keep');
  t.same(plan({ servers: drained, drainingSince: since }), [], 'sessions unknown: keep');
  t.same(plan({ servers: drained, sessions: idle, drainingSince: since }), [{ kind: 'remove', backend: be, server: 'd1', reason: 'idle' }]);
  t.same(plan({ servers: drained, sessions: busy, drainingSince: since, now: 9_000 + 35_000 }), [{ kind: 'remove', backend: be, server: 'd1', reason: 'drain-timeout' }]);
  t.same(plan({ servers: drained, sessions: busy, now: 1e9 }), [], 'a drain never seen starts its clock now');
  t.same(commandsOf({ kind: 'remove', backend: be, server: 'd1', reason: 'idle' }, '').map((c) => c.line),
    ['set server app_shop/d1 state maint', 'shutdown sessions server app_shop/d1', 'del server app_shop/d1']);
});

t.test('a server in maintenance without a route is removed', async (t) => {
  t.same(plan({ servers: [server('d1', 5001, 0x01)] }), [{ kind: 'remove', backend: be, server: 'd1', reason: 'maintenance' }]);
});

t.test('capacity first: a release change adds before it drains', async (t) => {
  const steps = plan({ routes: [route('new1', 6001), route('new2', 6002)], servers: [server('old1', 5001), server('old2', 5002)] });
  t.same(steps.map((s) => `${s.kind} ${'server' in s ? s.server : ''}`), ['add new1', 'add new2', 'drain old1', 'drain old2']);
});

t.test('servers of other backends are not this plan\'s', async (t) => {
  t.same(plan({ servers: [{ ...server('x', 1), backend: 'app_blog' }] }), []);
});

t.test('a route HAProxy cannot take (no IP address) is not added', async (t) => {
  t.same(plan({ routes: [route('d1', 5001, 'dyno.example')] }), []);
});

t.test('the host map: missing added, wrong set in place, extra deleted', async (t) => {
  const desired = [{ host: 'shop.localhost', backend: 'app_shop' }, { host: 'blog.localhost', backend: 'app_blog' }, { host: 'wiki.localhost', backend: 'app_wiki' }];
  const actual = new Map([['shop.localhost', ['app_shop']], ['blog.localhost', ['app_old', 'app_blog']], ['gone.localhost', ['app_gone']]]);
  const steps = planMap(desired, actual);
  t.same(steps, [
    { kind: 'map-set', host: 'blog.localhost', backend: 'app_blog' },
    { kind: 'map-add', host: 'wiki.localhost', backend: 'app_wiki' },
    { kind: 'map-del', host: 'gone.localhost' },
  ]);
  t.same(steps.flatMap((s) => commandsOf(s, '/w/hosts.map')).map((c) => c.line), [
    'set map /w/hosts.map blog.localhost app_blog', 'add map /w/hosts.map wiki.localhost app_wiki', 'del map /w/hosts.map gone.localhost',
  ]);
  t.same(planMap(desired.slice(0, 1), new Map([['shop.localhost', ['app_shop']]])), [], 'in step: nothing');
});
