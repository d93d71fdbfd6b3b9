// Convergence to the welcome's desired set, over a real DynoManager with the fake driver.
import t from 'tap';
import { Convergence, refusedStatus } from '../../../../agent/link/convergence.js';
import type { SlipwayError } from '../../../../shared/errors.js';
import type { DynoSpec } from '../../../../shared/protocol.js';
import { quietLogger } from '../../../helpers/host.js';
import { managerSetup, spec } from '../../../helpers/fake-manager.js';

function setup(t: Parameters<typeof managerSetup>[0], graceMs: number, allocatableMb = 1536) {
  const s = managerSetup(t, allocatableMb);
  const refused: { spec: DynoSpec; err: SlipwayError }[] = [];
  const convergence = new Convergence({ manager: s.manager, log: quietLogger(), graceMs, refused: (sp, err) => void refused.push({ spec: sp, err }) });
  t.teardown(() => convergence.cancel());
  return { ...s, convergence, refused };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('a desired dyno with a spec that the host does not run is started; one it runs is left alone', async (t) => {
  const s = setup(t, 60_000);
  s.manager.start(spec(1));
  await s.until('app-worker-1', 'up');
  const step = s.convergence.converge([{ id: 'app-worker-1', spec: spec(1) }, { id: 'app-worker-2', spec: spec(2) }]);
  t.same(step, { started: ['app-worker-2'], refused: [], unknown: [] });
  await s.until('app-worker-2', 'up');
  t.equal(s.driver.started.filter((c) => c.dynoId === 'app-worker-1').length, 1, 'the running dyno was not started twice');
});

t.test('a desired dyno the host cannot take is reported with the refusal code, as a down status', async (t) => {
  const s = setup(t, 60_000, 512);
  const step = s.convergence.converge([{ id: 'app-worker-1', spec: spec(1, 512) }, { id: 'app-worker-2', spec: spec(2, 512) }]);
  t.same(step.refused, ['app-worker-2']);
  t.equal(s.refused[0]?.err.code, 'INSUFFICIENT_CAPACITY');
  const status = refusedStatus(s.refused[0]!.spec, s.refused[0]!.err);
  t.match(status, { id: 'app-worker-2', state: 'down', reason: { code: 'INSUFFICIENT_CAPACITY', retryable: true } });
});

t.test('an unlisted dyno keeps running through the grace, then is stopped', async (t) => {
  const s = setup(t, 300);
  s.manager.start(spec(1));
  s.manager.start(spec(2));
  await s.until('app-worker-2', 'up');
  const step = s.convergence.converge([{ id: 'app-worker-1' }]);
  t.same(step.unknown, ['app-worker-2']);
  await sleep(150);
  t.equal(s.manager.get('app-worker-2')?.state, 'up', 'still running inside the grace');
  await s.until('app-worker-2', 'down');
  t.equal(s.manager.get('app-worker-1')?.state, 'up', 'the listed dyno is untouched');
});

t.test('a start_dyno claim, a later welcome that lists it, or a lost link each keep an unlisted dyno', async (t) => {
  const s = setup(t, 200);
  for (const n of [1, 2, 3]) s.manager.start(spec(n));
  await s.until('app-worker-3', 'up');
  s.convergence.converge([]);
  s.convergence.claim('app-worker-1');
  t.same(s.convergence.pending().sort(), ['app-worker-2', 'app-worker-3']);
  s.convergence.converge([{ id: 'app-worker-2' }]);
  t.same(s.convergence.pending().sort(), ['app-worker-1', 'app-worker-3'], 'a new welcome decides afresh');
  s.convergence.cancel();
  t.same(s.convergence.pending(), [], 'the link dropped: nothing is stopped on the word of a coordinator we cannot hear');
  await sleep(400);
  t.same(s.manager.list().map((d) => d.state), ['up', 'up', 'up']);
});

t.test('a welcome without a desired set changes nothing', async (t) => {
  const s = setup(t, 10);
  s.manager.start(spec(1));
  t.same(s.convergence.converge(undefined), { started: [], refused: [], unknown: [] });
  await sleep(100);
  t.equal(s.manager.get('app-worker-1')?.state, 'up');
});
