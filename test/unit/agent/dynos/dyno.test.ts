// The dyno owner's state machine with a fake runtime driver, on fake time
// (test/helpers/fake-dyno.ts): the driver and the clock are the only fakes (runc is exercised
// in test/integration); the readiness probe uses a real TCP listener. Crash restarts are in
// restarts-hook.test.ts, R10 in boot-deadline-hook.test.ts, R14/R15 in
// memory-watch-hook.test.ts, daily cycling in cycling-hook.test.ts.
import t from 'tap';
import { FIRST_STATES, TRANSITIONS } from '../../../../agent/dynos/dyno.js';
import type { DynoRecord } from '../../../../agent/dynos/dyno-records.js';
import { SlipwayError } from '../../../../shared/errors.js';
import type { DynoStateName, DynoStatus } from '../../../../shared/protocol.js';
import { dynoSetup, dynoSpec, workerSpec } from '../../../helpers/fake-dyno.js';

/** Log shipping as the dyno sees it (logs-hook.ts): what it was asked to do, in order. */
function fakeLogs() {
  const calls: string[] = [];
  return {
    calls,
    lines: () => calls.filter((c) => c.startsWith('system:')).map((c) => c.slice('system:'.length)),
    async attach(_d: unknown, _s: unknown, fromEnd = false) { calls.push(`attach:${fromEnd ? 'end' : 'start'}`); },
    system(_d: unknown, text: string) { calls.push(`system:${text}`); },
    async flush() { calls.push('flush'); },
    async detach() { calls.push('detach'); },
  };
}

t.test('the transition table has no way back from down', async (t) => {
  t.same(TRANSITIONS.down, []);
  t.same(TRANSITIONS.stopping, ['down'], 'a stop always ends down');
  t.same(FIRST_STATES, ['starting', 'up', 'crashed'], 'a first report is a new dyno or what a re-adoption found');
});

t.test('a web dyno is up only once its port accepts connections, with its endpoint', async (t) => {
  const s = dynoSetup(t);
  const d = s.make(dynoSpec());
  d.begin();
  const up = await s.until('up');
  t.same(s.states(), ['starting', 'up']);
  t.equal(s.events[0]!.from, null);
  t.equal(up.endpoint?.host, '127.0.0.1');
  t.ok(s.driver.started[0]!.env.includes(`PORT=${up.endpoint?.port}`), 'the endpoint port is the dyno PORT');
  t.notMatch(JSON.stringify(s.events), /s3cr3t/, 'config vars never appear in status or events');
  t.same([...s.slugs.pins], ['app1-web-1-abc'], 'the running dyno pins its slug');
  t.same(s.clock.pending, [], 'up: no boot deadline left waiting');
});

t.test('a worker dyno is up once running, without PORT or endpoint', async (t) => {
  const s = dynoSetup(t);
  const d = s.make(workerSpec());
  d.begin();
  const up = await s.until('up');
  t.equal(up.endpoint, undefined);
  t.notOk(s.driver.started[0]!.env.some((e) => e.startsWith('PORT=')));
});

t.test('every state change is a `slipway[web.1]` line; the container log is followed from its start and read out before removal', async (t) => {
  const s = dynoSetup(t);
  const logs = fakeLogs();
  const d = s.make(dynoSpec(), { logs });
  d.begin();
  await s.until('up');
  await d.stop(1000);
  t.same(logs.lines(), ['Starting process', 'State changed from starting to up', 'State changed from up to stopping', 'State changed from stopping to down']);
  t.same(logs.calls.filter((c) => !c.startsWith('system:')), ['attach:start', 'flush', 'detach']);
});

t.test('an OOM kill is reported as R15 from the driver, not from the exit code', async (t) => {
  const s = dynoSetup(t);
  const d = s.make(dynoSpec());
  d.begin();
  await s.until('up');
  s.driver.exit('app1-web-1-abc', { code: 137, signal: 'SIGKILL', oomKilled: true });
  t.match((await s.until('crashed')).reason, { code: 'DYNO_OOM_KILLED', message: /R15/ });
});

t.test('stop reports stopping before any signal, then down with the exit status', async (t) => {
  const s = dynoSetup(t);
  const order: string[] = [];
  const onTransition = (from: DynoStateName | null, st: DynoStatus) => { order.push(`state:${st.state}`); s.deps.onTransition(from, st); };
  const signal = s.driver.signal.bind(s.driver);
  s.driver.signal = async (h, sig) => { order.push(`signal:${sig}`); return signal(h, sig); };
  const d = s.make(dynoSpec(), { onTransition });
  d.begin();
  await s.until('up');
  await d.stop(1000);
  t.same(order, ['state:starting', 'state:up', 'state:stopping', 'signal:SIGTERM', 'state:down']);
  const down = s.events.at(-1)!.status;
  t.same(down.exit, { code: 143, signal: 'SIGTERM' });
  t.equal(down.reason, undefined, 'a graceful stop has no error reason');
  t.same(s.clock.pending, [], 'the grace timer went with the exit');
});

t.test('R12: a dyno that ignores SIGTERM is killed after the grace, not before', async (t) => {
  const s = dynoSetup(t);
  s.driver.ignoreTerm = true;
  const d = s.make(dynoSpec());
  d.begin();
  await s.until('up');
  const stopping = d.stop(200);
  await s.clock.next((ms) => ms === 200);
  s.clock.tick(199);
  await s.settle();
  t.same(s.driver.signals, ['SIGTERM'], 'still in the grace');
  s.clock.tick(1);
  await stopping;
  const down = s.events.at(-1)!.status;
  t.equal(down.state, 'down');
  t.match(down.reason, { code: 'DYNO_STOP_TIMEOUT', message: /R12/ });
  t.same(s.driver.signals, ['SIGTERM', 'SIGKILL']);
});

t.test('stop during launch reports stopping and down, and no container is left running', async (t) => {
  const s = dynoSetup(t);
  let release!: () => void;
  s.slugs.ensure = (_ref: unknown, o: { pin: string }) => new Promise((r) => { release = () => { s.slugs.pins.add(o.pin); r({ path: '/slugs/x' }); }; });
  const d = s.make(dynoSpec());
  d.begin();
  await d.stop(1000);
  t.same(s.states(), ['starting', 'stopping', 'down']);
  release();
  await s.settle();
  t.same(s.driver.started, [], 'launch noticed the stop and started nothing');
  t.equal(s.ports.inUse, 0);
  t.same([...s.slugs.pins], [], 'the slug it had fetched was unpinned');
});

t.test('a slug failure crashes the dyno with the slug error code and starts nothing', async (t) => {
  const s = dynoSetup(t, { slugError: new SlipwayError('SLUG_CHECKSUM_MISMATCH', 'digest differs') });
  const d = s.make(dynoSpec());
  d.begin();
  const crashed = await s.until('crashed');
  t.match(crashed.reason, { code: 'SLUG_CHECKSUM_MISMATCH' });
  t.same(s.clock.pending, [], 'not retryable: no restart waiting');
  s.clock.tick(3_600_000);
  await s.settle();
  t.same(s.states(), ['starting', 'crashed'], 'not retryable: no restart');
  t.same(s.driver.started, []);
});

t.test('re-adoption takes the one transition path: one first report (from null) with its entry actions, the log followed from its end', async (t) => {
  const s = dynoSetup(t);
  const logs = fakeLogs();
  const d = s.make(dynoSpec(), { logs });
  const port = await s.ports.reserve();
  s.ports.release(port);
  const found = await s.driver.found(d.id, { port });
  await d.adopt(found, { spec: d.spec, port });
  t.same(s.events.map((e) => [e.from, e.status.state]), [[null, 'up']], 'one report, from null');
  t.same(s.events[0]!.status.endpoint, { host: '127.0.0.1', port }, 'with the endpoint whose port accepts');
  t.same(logs.lines(), ['Re-adopted as up'], 'the slipway[web.1] line of the entry');
  t.same(logs.calls.filter((c) => c.startsWith('attach')), ['attach:end'], 'what it wrote while no agent ran is not shipped late');
  t.equal(s.ports.inUse, 1, 'its port is held again');
  t.same(s.driver.started, [], 'the same container: nothing started');
  await d.stop(1000);
  t.same(s.states(), ['up', 'stopping', 'down']);
  t.equal(s.ports.inUse, 0);
});

t.test('re-adoption of a dyno whose stop was under way finishes the stop and restarts nothing', async (t) => {
  for (const gone of [false, true]) {
    const s = dynoSetup(t);
    const written: string[] = [];
    const records = {
      async write(r: DynoRecord) { written.push(r.stopping ? 'stopping' : 'record'); },
      async remove() { written.push('removed'); },
      async readAll() { return { records: [], bad: [] }; },
    } as never;
    const d = s.make(workerSpec(), { records });
    await d.adopt(gone ? undefined : await s.driver.found(d.id), { spec: d.spec, stopping: { graceMs: 500 } });
    await s.settle();
    t.same(s.states(), gone ? ['crashed', 'down'] : ['up', 'stopping', 'down'], gone ? 'gone: crashed, then down' : 'running: stopped Heroku style');
    t.same(s.driver.signals, gone ? [] : ['SIGTERM']);
    t.same(s.clock.pending, [], 'no restart and no cycle waiting');
    t.same(s.driver.started, [], 'nothing started');
    t.equal(written.at(-1), 'removed', 'its record is gone');
  }
});
