// The decisions the manager and convergence record (agent/diagnostics/decisions.ts), over the
// fake driver: an admission refused carries the numbers it was refused on, a drain says its
// cause, a stop from convergence says how long the dyno went unlisted.
import t, { type Test } from 'tap';
import { DecisionLog } from '../../../../agent/diagnostics/decisions.js';
import { DynoManager } from '../../../../agent/dynos/manager.js';
import { PortAllocator } from '../../../../agent/dynos/ports.js';
import { Convergence } from '../../../../agent/link/convergence.js';
import { SlipwayError } from '../../../../shared/errors.js';
import type { DynoStatus } from '../../../../shared/protocol.js';
import { FakeDriver } from '../../../helpers/fake-driver.js';
import { MB, spec } from '../../../helpers/fake-manager.js';
import { quietLogger } from '../../../helpers/host.js';

let nextPort = 38000 + Math.floor(Math.random() * 1000);

function setup(t: Test, opts: { allocatableMb?: number; pressure?: () => SlipwayError | undefined } = {}) {
  const driver = new FakeDriver();
  t.teardown(() => driver.close());
  const decisions = new DecisionLog({ now: () => Date.now() });
  const ports = new PortAllocator(nextPort, nextPort + 9, '127.0.0.1');
  nextPort += 10;
  const manager = new DynoManager({
    driver, ports, log: quietLogger(), stopGraceMs: 1000, allocatableBytes: () => (opts.allocatableMb ?? 1536) * MB, decisions,
    slugs: { async ensure() { return { path: '/slugs/x' }; }, unpin() {} },
    stacks: { resolve: () => ({ dir: '/stacks/busybox', shell: '/bin/sh' }) },
    settings: { dynosDir: '/dynos', address: '127.0.0.1', dynoUser: { uid: 64000, gid: 64000 }, bootTimeoutMs: 5000, nofile: 10000 },
    ...(opts.pressure ? { pressure: opts.pressure } : {}),
  });
  const events: DynoStatus[] = [];
  manager.onTransition((_from, status) => events.push(status));
  const until = async (id: string, state: string) => {
    const end = Date.now() + 5000;
    while (!events.some((e) => e.id === id && e.state === state)) {
      if (Date.now() > end) throw new Error(`${id} never ${state}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  t.teardown(() => manager.stopAll(0));
  return { manager, decisions, until, driver };
}

t.test('a start refused for memory records the requested, allocatable and committed bytes', async (t) => {
  const s = setup(t, { allocatableMb: 1536 });
  s.manager.start(spec(1));
  s.manager.start(spec(2));
  t.throws(() => s.manager.start(spec(3, 1024)), { code: 'INSUFFICIENT_CAPACITY' });
  const [d] = s.decisions.list({ dyno: 'app-worker-3' });
  t.match(d, {
    kind: 'admission_refused', dynoId: 'app-worker-3', dyno: 'worker.3', app: 'app', message: /not started: dyno needs 1024 MB, host has 512 MB free/,
    data: { code: 'INSUFFICIENT_CAPACITY', resource: 'memory', requestedBytes: 1024 * MB, allocatableBytes: 1536 * MB, committedBytes: 1024 * MB, freeBytes: 512 * MB },
  });
  t.equal(s.decisions.list().filter((x) => x.kind === 'admission_refused').length, 1, 'the admitted ones decided nothing');
});

t.test('a start refused for the disk or the descriptors (host/pressure.ts) records which, with the code', async (t) => {
  let refusal: SlipwayError | undefined = new SlipwayError('STATE_DIR_FULL', 'the state dir has 12 MB free, under its floor of 1024 MB');
  const s = setup(t, { pressure: () => refusal });
  t.throws(() => s.manager.start(spec(1)), { code: 'STATE_DIR_FULL' });
  refusal = new SlipwayError('AGENT_FD_LIMIT', 'the agent holds 1010 of its 1024 descriptors');
  t.throws(() => s.manager.start(spec(2)), { code: 'AGENT_FD_LIMIT' });
  t.match(s.decisions.list().map((d) => d.data), [
    { code: 'STATE_DIR_FULL', resource: 'disk' },
    { code: 'AGENT_FD_LIMIT', resource: 'descriptors' },
  ]);
  t.match(s.decisions.list()[0]!.message, /12 MB free/);
});

t.test('a drain is recorded once with its cause; a start while draining is an admission refused', async (t) => {
  const s = setup(t);
  s.manager.start(spec(1));
  await s.until('app-worker-1', 'up');
  s.manager.drain({ cause: 'spot_interruption', deadline: '2026-12-02T10:02:00Z' });
  s.manager.drain({ cause: 'spot_interruption' });
  t.throws(() => s.manager.start(spec(2)), { code: 'HOST_DRAINING' });
  s.manager.drain({ stopDynos: true, graceMs: 100 });
  await s.until('app-worker-1', 'down');
  t.match(s.decisions.list(), [
    { kind: 'drain', data: { cause: 'spot_interruption', stopDynos: false, stopping: 0, deadline: '2026-12-02T10:02:00Z' }, message: /running dynos keep running/ },
    { kind: 'admission_refused', dynoId: 'app-worker-2', data: { code: 'HOST_DRAINING', resource: 'drain' } },
    { kind: 'drain', data: { cause: 'coordinator', stopDynos: true, stopping: 1, graceMs: 100 }, message: /stopping 1 dynos/ },
  ]);
  t.equal(s.decisions.list().length, 3, 'the repeated drain that changed nothing decided nothing');
});

t.test('a stop from convergence is recorded with the grace the dyno went unlisted', async (t) => {
  const s = setup(t);
  s.manager.start(spec(1));
  s.manager.start(spec(2));
  await s.until('app-worker-2', 'up');
  const convergence = new Convergence({ manager: s.manager, log: quietLogger(), graceMs: 200, refused: () => undefined });
  t.teardown(() => convergence.cancel());
  convergence.converge([{ id: 'app-worker-1' }]);
  await s.until('app-worker-2', 'down');
  t.match(s.decisions.list({ dyno: 'worker.2' }), [{ kind: 'convergence_stop', dynoId: 'app-worker-2', app: 'app', data: { graceMs: 200, state: 'up' }, message: /has not listed it for 0.2 s/ }]);
  t.same(s.decisions.list({ dyno: 'worker.1' }), [], 'the listed dyno was left alone');
});

t.test('a one-off dyno that exits is not restarted: restart_given_up, with why', async (t) => {
  const s = setup(t);
  const run = { ...spec(1), id: 'app-run-1', type: 'run', name: 'run.1' };
  s.manager.start(run);
  await s.until('app-run-1', 'up');
  s.driver.exit('app-run-1', { code: 0, signal: null, oomKilled: false });
  await s.until('app-run-1', 'crashed');
  t.match(s.decisions.list({ dyno: 'run.1' }), [{ kind: 'restart_given_up', message: 'not restarted: a one-off dyno runs once', data: { oneOff: true, reason: 'DYNO_CRASHED' } }]);
});
