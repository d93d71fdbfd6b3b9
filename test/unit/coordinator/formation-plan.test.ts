import t from 'tap';
import { DynoId } from '../../../shared/protocol.js';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { dynoIndex, newDynoId, planFormation, randomSuffix, type FormationDyno } from '../../../coordinator/formation-plan.js';

const target = (quantity: number, specKey = 'v1') => ({ app: 'shop', type: 'web', quantity, specKey });
const running = (id: string, index: number, specKey = 'v1', state: FormationDyno['state'] = 'up'): FormationDyno => ({ id, index, specKey, state });

t.test('scaling up from nothing starts web.1..web.N', async (t) => {
  const plan = planFormation(target(3), []);
  t.same(plan.starts, [
    { index: 1, name: 'web.1', replaces: [] },
    { index: 2, name: 'web.2', replaces: [] },
    { index: 3, name: 'web.3', replaces: [] },
  ]);
  t.same(plan.stops, []);
});

t.test('scaling up keeps the running dynos and fills the missing indices', async (t) => {
  const plan = planFormation(target(4), [running('a', 1), running('c', 3)]);
  t.same(plan.keep, ['a', 'c']);
  t.same(plan.starts.map((s) => s.name), ['web.2', 'web.4']);
  t.same(plan.stops, []);
});

t.test('scaling down stops the highest indices first', async (t) => {
  const plan = planFormation(target(1), [running('a', 1), running('b', 2), running('c', 3)]);
  t.same(plan.keep, ['a']);
  t.same(plan.starts, []);
  t.same(plan.stops, [
    { dynoId: 'c', index: 3, reason: 'scale_down' },
    { dynoId: 'b', index: 2, reason: 'scale_down' },
  ]);
});

t.test('scaling to zero stops everything', async (t) => {
  const plan = planFormation(target(0), [running('a', 1), running('b', 2)]);
  t.same(plan.stops.map((s) => s.dynoId), ['b', 'a']);
  t.same(plan.keep, []);
});

t.test('a changed spec replaces every dyno: start the new one, then stop the old one', async (t) => {
  const plan = planFormation(target(2, 'v2'), [running('a', 1, 'v1'), running('b', 2, 'v1')]);
  t.same(plan.starts, [
    { index: 1, name: 'web.1', replaces: ['a'] },
    { index: 2, name: 'web.2', replaces: ['b'] },
  ]);
  t.same(plan.stops, [], 'the old dynos stop only after their replacements are admitted');
});

t.test('replacing and scaling down at once', async (t) => {
  const plan = planFormation(target(1, 'v2'), [running('a', 1, 'v1'), running('b', 2, 'v1')]);
  t.same(plan.starts, [{ index: 1, name: 'web.1', replaces: ['a'] }]);
  t.same(plan.stops, [{ dynoId: 'b', index: 2, reason: 'scale_down' }]);
});

t.test('a half-done replacement keeps the new dyno and stops the old one', async (t) => {
  const plan = planFormation(target(1, 'v2'), [running('old', 1, 'v1'), running('new', 1, 'v2', 'starting')]);
  t.same(plan.keep, ['new']);
  t.same(plan.starts, []);
  t.same(plan.stops, [{ dynoId: 'old', index: 1, reason: 'replaced' }]);
});

t.test('duplicates at one index: the up one stays', async (t) => {
  const plan = planFormation(target(1), [running('x', 1, 'v1', 'crashed'), running('y', 1, 'v1', 'up')]);
  t.same(plan.keep, ['y']);
  t.same(plan.stops, [{ dynoId: 'x', index: 1, reason: 'duplicate' }]);
});

t.test('a dyno adopted from a hello (unknown spec) is replaced', async (t) => {
  const plan = planFormation(target(1), [{ id: 'adopted', index: 1, state: 'up' }]);
  t.same(plan.starts, [{ index: 1, name: 'web.1', replaces: ['adopted'] }]);
});

t.test('the same formation again changes nothing', async (t) => {
  const plan = planFormation(target(2), [running('a', 1), running('b', 2)]);
  t.same(plan, { starts: [], stops: [], keep: ['a', 'b'] });
});

const checkId = TypeCompiler.Compile(DynoId);
t.test('dyno ids are app-type-index-suffix and always match the DynoId pattern', async (t) => {
  t.equal(newDynoId('shop', 'web', 3, 'ab12cd'), 'shop-web-3-ab12cd');
  t.equal(newDynoId('shop', 'Big_Worker', 1, 'ab12cd'), 'shop-big-worker-1-ab12cd');
  const long = newDynoId('a'.repeat(30), 'T'.repeat(30), 1000, randomSuffix());
  t.ok(checkId.Check(long), `${long} matches`);
  t.ok(long.length <= 63);
  t.match(randomSuffix(), /^[a-z0-9]{6}$/);
});

t.test('dynoIndex reads the index of a dyno name', async (t) => {
  t.equal(dynoIndex('web.12'), 12);
  t.equal(dynoIndex('my_worker.3'), 3);
  t.ok(Number.isNaN(dynoIndex('web')));
});
