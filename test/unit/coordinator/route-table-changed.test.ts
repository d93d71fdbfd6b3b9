// RouteTable.onChanged: the app of every change, for a router that mirrors the whole table
// (coordinator/haproxy/router.ts); nothing for a state that changes no route.
import t from 'tap';
import { RouteTable, type RoutableDyno } from '../../../coordinator/route-table.js';

const dyno = (id: string, app: string, state: RoutableDyno['state'], port?: number): RoutableDyno =>
  ({ id, app, name: 'web.1', state, ...(port === undefined ? {} : { endpoint: { host: '127.0.0.1', port } }) });

t.test('every change names its app, once', async (t) => {
  const routes = new RouteTable();
  const changed: string[] = [];
  const unsubscribe = routes.onChanged((app) => changed.push(app));
  routes.applyDynoState(dyno('d1', 'shop', 'up', 5001));
  routes.applyDynoState(dyno('d1', 'shop', 'up', 5001));
  t.same(changed, ['shop'], 'added; the same again is no change');
  routes.applyDynoState(dyno('d1', 'shop', 'up', 5002));
  t.same(changed, ['shop', 'shop'], 'a moved endpoint');
  routes.applyDynoState(dyno('b1', 'blog', 'starting'));
  t.same(changed, ['shop', 'shop'], 'a dyno without a route that still has none');
  routes.applyDynoState(dyno('d1', 'shop', 'stopping'));
  t.same(changed, ['shop', 'shop', 'shop'], 'removed');
  routes.applyDynoState(dyno('b1', 'blog', 'up', 6001));
  routes.retain(() => false);
  t.same(changed, ['shop', 'shop', 'shop', 'blog', 'blog'], 'retain removes through the same path');
  unsubscribe();
  routes.applyDynoState(dyno('d1', 'shop', 'up', 5001));
  t.equal(changed.length, 5, 'unsubscribed');
});

t.test('the listener runs after the change: the table already shows it', async (t) => {
  const routes = new RouteTable();
  const seen: number[] = [];
  routes.onChanged((app) => seen.push(routes.routesFor(app).length));
  routes.applyDynoState(dyno('d1', 'shop', 'up', 5001));
  routes.applyDynoState(dyno('d1', 'shop', 'down'));
  t.same(seen, [1, 0]);
});
