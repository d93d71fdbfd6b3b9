import t from 'tap';
import type { DynoSpec, DynoStatus } from '../../../shared/protocol.js';
import { DynoTable } from '../../../coordinator/dyno-table.js';
import { RouteTable } from '../../../coordinator/route-table.js';

const spec: DynoSpec = {
  id: 'shop-web-1-aaaaaa', app: 'shop', type: 'web', name: 'web.1',
  size: { name: 'standard-1x', memoryMb: 512, cpuShares: 1024, pidsLimit: 256 },
  command: 'httpd', env: {}, slug: { url: 'http://127.0.0.1:1/s.tgz', sha256: 'a'.repeat(64) }, stack: 'busybox',
};
const at = (s: number): string => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
const status = (state: DynoStatus['state'], s: number, extra: Partial<DynoStatus> = {}): DynoStatus => ({
  id: spec.id, app: 'shop', type: 'web', name: 'web.1', state, memoryMb: 512, since: at(s), ...extra,
});

function setup(): { dynos: DynoTable; routes: RouteTable } {
  const routes = new RouteTable();
  return { dynos: new DynoTable(routes, () => '10.0.0.9'), routes };
}

t.test('a placed dyno is starting and has no route until the agent reports it up', async (t) => {
  const { dynos, routes } = setup();
  dynos.addPlaced(spec, 'agent-a', 'k1');
  t.match(dynos.views(), [{ id: spec.id, name: 'web.1', agentId: 'agent-a', state: 'starting' }]);
  dynos.applyStatus('agent-a', status('up', 2, { endpoint: { host: '10.0.0.9', port: 5000 } }), 'event');
  t.same(routes.routesFor('shop'), [{ dynoId: spec.id, name: 'web.1', host: '10.0.0.9', port: 5000 }]);
  t.match(dynos.views(), [{ state: 'up', endpoint: { port: 5000 }, since: at(2) }]);
});

t.test('an event older than the last reported state is stale and ignored; a hello always applies', async (t) => {
  const { dynos, routes } = setup();
  dynos.addPlaced(spec, 'agent-a', 'k1');
  dynos.applyStatus('agent-a', status('up', 5, { endpoint: { host: '10.0.0.9', port: 5000 } }), 'hello');
  t.equal(dynos.applyStatus('agent-a', status('starting', 1), 'event'), false);
  t.equal(dynos.get(spec.id)?.state, 'up');
  t.equal(routes.hasRoutes('shop'), true);
  t.equal(dynos.applyStatus('agent-a', status('crashed', 3, { exit: { code: 1, signal: null } }), 'hello'), true);
  t.equal(dynos.get(spec.id)?.state, 'crashed');
  t.equal(routes.hasRoutes('shop'), false);
});

t.test('an unknown dyno from an agent is adopted, unless it is already down', async (t) => {
  const { dynos } = setup();
  t.equal(dynos.applyStatus('agent-a', status('up', 1), 'hello'), true);
  t.equal(dynos.get(spec.id)?.specKey, undefined, 'its spec is unknown');
  t.equal(dynos.get(spec.id)?.desired, 'run');
  t.equal(dynos.applyStatus('agent-a', { ...status('down', 1), id: 'gone-1' }, 'hello'), false);
  t.equal(dynos.has('gone-1'), false);
});

t.test('dynos an agent no longer reports are marked down and lose their route', async (t) => {
  const { dynos, routes } = setup();
  dynos.addPlaced(spec, 'agent-a', 'k1');
  dynos.applyStatus('agent-a', status('up', 1, { endpoint: { host: '10.0.0.9', port: 5000 } }), 'event');
  dynos.addPlaced({ ...spec, id: 'other-web-1-bbbbbb', app: 'other' }, 'agent-b', 'k1');
  const missing = dynos.markMissing('agent-a', new Set());
  t.same(missing.map((d) => d.id), [spec.id]);
  t.match(dynos.get(spec.id), { state: 'down', reason: { code: 'DYNO_NOT_FOUND' } });
  t.equal(routes.hasRoutes('shop'), false);
  t.equal(dynos.get('other-web-1-bbbbbb')?.state, 'starting', "another agent's dyno is untouched");
});

t.test('a dyno that is down and no longer wanted is deleted', async (t) => {
  const { dynos } = setup();
  dynos.addPlaced(spec, 'agent-a', 'k1');
  dynos.markUnwanted(spec.id);
  t.equal(dynos.unwantedOn('agent-a').length, 1);
  dynos.applyStatus('agent-a', status('stopping', 1), 'event');
  t.equal(dynos.has(spec.id), true);
  dynos.applyStatus('agent-a', status('down', 2, { exit: { code: 0, signal: null } }), 'event');
  t.equal(dynos.has(spec.id), false);
  t.same(dynos.views(), []);
});

t.test('an unexpected down stays visible with its exit until a new dyno takes the index', async (t) => {
  const { dynos } = setup();
  dynos.addPlaced(spec, 'agent-a', 'k1');
  dynos.applyStatus('agent-a', status('down', 2, { exit: { code: null, signal: 'SIGKILL' } }), 'event');
  t.match(dynos.views(), [{ state: 'down', exit: { signal: 'SIGKILL' } }]);
  t.same(dynos.wantedOf('shop', 'web'), [], 'a down dyno does not count toward the formation');
  t.same(dynos.downAt('shop', 'web', 1).map((d) => d.id), [spec.id]);
});
