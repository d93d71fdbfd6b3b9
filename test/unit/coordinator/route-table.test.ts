import t from 'tap';
import { RouteTable, type RoutableDyno } from '../../../coordinator/route-table.js';

const dyno = (id: string, name: string, state: RoutableDyno['state'], port?: number, host = '10.0.0.5'): RoutableDyno => ({
  id, app: 'shop', name, state, ...(port !== undefined ? { endpoint: { host, port } } : {}),
});

t.test("a route appears on 'up' with an endpoint and goes on stopping, crashed and down", async (t) => {
  for (const gone of ['stopping', 'crashed', 'down'] as const) {
    const routes = new RouteTable();
    routes.applyDynoState(dyno('d1', 'web.1', 'starting'));
    t.same(routes.snapshot(), {}, 'starting is not routed');
    routes.applyDynoState(dyno('d1', 'web.1', 'up', 5001));
    t.same(routes.snapshot(), { shop: [{ dynoId: 'd1', name: 'web.1', host: '10.0.0.5', port: 5001 }] });
    routes.applyDynoState(dyno('d1', 'web.1', gone));
    t.same(routes.snapshot(), {}, `${gone} removes the route`);
    t.equal(routes.hasRoutes('shop'), false);
  }
});

t.test("'up' without an endpoint is not routable", async (t) => {
  const routes = new RouteTable();
  routes.applyDynoState(dyno('d1', 'web.1', 'up'));
  t.same(routes.routesFor('shop'), []);
});

t.test("an endpoint on an unspecified host is reached at the agent's address", async (t) => {
  const routes = new RouteTable();
  routes.applyDynoState(dyno('d1', 'web.1', 'up', 5001, '0.0.0.0'), '10.1.2.3');
  t.equal(routes.routesFor('shop')[0]?.host, '10.1.2.3');
});

t.test('routes are listed by dyno name in numeric order', async (t) => {
  const routes = new RouteTable();
  routes.applyDynoState(dyno('d10', 'web.10', 'up', 5010));
  routes.applyDynoState(dyno('d2', 'web.2', 'up', 5002));
  routes.applyDynoState(dyno('d1', 'web.1', 'up', 5001));
  t.same(routes.routesFor('shop').map((r) => r.name), ['web.1', 'web.2', 'web.10']);
});

t.test('next() goes round-robin over the current routes', async (t) => {
  const routes = new RouteTable();
  t.equal(routes.next('shop'), undefined);
  routes.applyDynoState(dyno('d1', 'web.1', 'up', 5001));
  routes.applyDynoState(dyno('d2', 'web.2', 'up', 5002));
  routes.applyDynoState(dyno('d3', 'web.3', 'up', 5003));
  t.same([1, 2, 3, 4, 5, 6].map(() => routes.next('shop')?.name), ['web.1', 'web.2', 'web.3', 'web.1', 'web.2', 'web.3']);
  routes.applyDynoState(dyno('d2', 'web.2', 'stopping'));
  const seen = new Set([1, 2, 3, 4].map(() => routes.next('shop')?.name));
  t.same([...seen].sort(), ['web.1', 'web.3'], 'a removed dyno is never picked again');
});

t.test('apps are kept apart', async (t) => {
  const routes = new RouteTable();
  routes.applyDynoState(dyno('d1', 'web.1', 'up', 5001));
  routes.applyDynoState({ id: 'o1', app: 'blog', name: 'web.1', state: 'up', endpoint: { host: '10.0.0.6', port: 6001 } });
  t.same(Object.keys(routes.snapshot()), ['blog', 'shop']);
  t.equal(routes.next('blog')?.dynoId, 'o1');
  t.equal(routes.next('nope'), undefined);
});

t.test('a moved endpoint replaces the old one', async (t) => {
  const routes = new RouteTable();
  t.equal(routes.applyDynoState(dyno('d1', 'web.1', 'up', 5001)), true);
  t.equal(routes.applyDynoState(dyno('d1', 'web.1', 'up', 5001)), false, 'same endpoint: no change');
  t.equal(routes.applyDynoState(dyno('d1', 'web.1', 'up', 5009)), true);
  t.same(routes.routesFor('shop').map((r) => r.port), [5009]);
});

t.test('listeners hear of every route that leaves the table, and of a moved endpoint\'s old route', async (t) => {
  const routes = new RouteTable();
  const removed: string[] = [];
  const unsubscribe = routes.onRemoved((r) => removed.push(`${r.dynoId}@${r.port}`));
  routes.applyDynoState(dyno('d1', 'web.1', 'up', 5001));
  routes.applyDynoState(dyno('d2', 'web.2', 'up', 5002));
  routes.applyDynoState(dyno('d1', 'web.1', 'up', 5001));
  t.same(removed, [], 'adding and re-reporting remove nothing');
  routes.applyDynoState(dyno('d1', 'web.1', 'up', 5009));
  t.same(removed, ['d1@5001'], 'a moved endpoint: the old route left');
  for (const gone of ['stopping', 'crashed', 'down', 'starting'] as const) {
    routes.applyDynoState(dyno('d2', 'web.2', 'up', 5002));
    removed.length = 0;
    routes.applyDynoState(dyno('d2', 'web.2', gone));
    t.same(removed, ['d2@5002'], `${gone}: the route left`);
  }
  removed.length = 0;
  routes.applyDynoState(dyno('d2', 'web.2', 'down'));
  t.same(removed, [], 'a dyno without a route removes nothing');
  t.equal(routes.remove('shop', 'd1'), true);
  t.same(removed, ['d1@5009'], 'remove() (a forgotten dyno) tells too');
  unsubscribe();
  routes.applyDynoState(dyno('d3', 'web.3', 'up', 5003));
  routes.applyDynoState(dyno('d3', 'web.3', 'stopping'));
  t.same(removed, ['d1@5009'], 'an unsubscribed listener hears nothing');
});
