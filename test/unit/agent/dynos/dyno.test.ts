// The dyno owner's state machine with a fake runtime driver: the driver is the only fake
// (runc is exercised in test/integration); the readiness probe uses a real TCP listener.
import t from 'tap';
import { Dyno, TRANSITIONS } from '../../../../agent/dynos/dyno.js';
import type { RestartPolicyOptions } from '../../../../agent/dynos/restart-policy.js';
import { PortAllocator } from '../../../../agent/dynos/ports.js';
import type { DynoSpec, DynoStateName, DynoStatus } from '../../../../shared/protocol.js';
import { SlipwayError } from '../../../../shared/errors.js';
import { quietLogger } from '../../../helpers/host.js';
import { FakeDriver } from '../../../helpers/fake-driver.js';

function spec(over: Partial<DynoSpec> = {}): DynoSpec {
  return {
    id: 'app1-web-1-abc', app: 'app1', type: 'web', name: 'web.1', command: 'run', env: { SECRET: 's3cr3t' },
    size: { name: 'standard-1x', memoryMb: 512, cpuShares: 1024, pidsLimit: 256 },
    slug: { url: 'http://127.0.0.1/x.tgz', sha256: 'a'.repeat(64) }, stack: 'busybox', ...over,
  };
}

let nextPort = 32000 + Math.floor(Math.random() * 2000);

function setup(t: { teardown(fn: () => unknown): void }, opts: { bootTimeoutMs?: number; slugError?: Error; restartPolicy?: RestartPolicyOptions } = {}) {
  const driver = new FakeDriver();
  t.teardown(() => driver.close());
  const ports = new PortAllocator(nextPort, nextPort + 9, '127.0.0.1');
  nextPort += 10;
  const events: { from: DynoStateName | null; status: DynoStatus; at: number }[] = [];
  const deps = {
    driver, ports,
    slugs: {
      pins: new Set<string>(),
      async ensure(_ref: unknown, o: { pin: string }) { if (opts.slugError) throw opts.slugError; this.pins.add(o.pin); return { path: '/slugs/x' }; },
      unpin(_sha: string, owner: string) { this.pins.delete(owner); },
    },
    stacks: { resolve: () => ({ dir: '/stacks/busybox', shell: '/bin/sh' }) } as any,
    settings: { dynosDir: '/dynos', address: '127.0.0.1', dynoUser: { uid: 64000, gid: 64000 }, bootTimeoutMs: opts.bootTimeoutMs ?? 5_000, nofile: 10000 },
    log: quietLogger(),
    onTransition: (from: DynoStateName | null, status: DynoStatus): void => { events.push({ from, status, at: Date.now() }); },
    ...(opts.restartPolicy ? { restartPolicy: opts.restartPolicy } : {}),
  };
  const states = () => events.map((e) => e.status.state);
  /** The `nth` (1-based) report of `state`, waiting up to 10 s for it. */
  const until = async (state: DynoStateName, nth = 1) => {
    const end = Date.now() + 10_000;
    const matching = () => events.filter((e) => e.status.state === state);
    while (matching().length < nth) {
      if (Date.now() > end) throw new Error(`never reached ${state} #${nth}: ${states().join(',')}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    return matching()[nth - 1]!.status;
  };
  return { driver, ports, events, states, until, deps };
}

t.test('the transition table has no way back from down', async (t) => {
  t.same(TRANSITIONS.down, []);
  t.same(TRANSITIONS.stopping, ['down'], 'a stop always ends down');
});

t.test('daily cycling: after the period an up dyno is stopped with SIGTERM and started afresh; no crash is reported', async (t) => {
  const s = setup(t);
  const d = new Dyno(spec(), { ...s.deps, cycling: { periodMs: 150, jitterMs: 0, graceMs: 500 } });
  d.begin();
  await s.until('up', 3);
  t.same(s.states().slice(0, 6), ['starting', 'up', 'starting', 'up', 'starting', 'up']);
  t.notOk(s.states().includes('crashed'), 'a cycle is not a crash');
  t.same(s.driver.signals.slice(0, 2), ['SIGTERM', 'SIGTERM'], 'each cycle stops the old container gracefully');
  t.same(s.driver.destroyed.slice(0, 2), ['app1-web-1-abc', 'app1-web-1-abc'], 'and removes it before the new one starts');
  t.ok(s.driver.started.length >= 3);
  t.equal(s.events[2]!.status.endpoint, undefined, 'the route is dropped while it cycles');
  t.equal(d.crashCount, 0);
  await d.stop(500);
  const n = s.driver.started.length;
  await new Promise((r) => setTimeout(r, 300));
  t.equal(s.driver.started.length, n, 'a stopped dyno is not cycled again');
});

t.test('without cycling configured (the off switch) an up dyno stays as it is', async (t) => {
  const s = setup(t);
  const d = new Dyno(spec(), s.deps);
  d.begin();
  await s.until('up');
  await new Promise((r) => setTimeout(r, 300));
  t.same(s.states(), ['starting', 'up']);
  await d.stop(500);
});

t.test('a web dyno is up only once its port accepts connections, with its endpoint', async (t) => {
  const s = setup(t);
  const d = new Dyno(spec(), s.deps);
  d.begin();
  const up = await s.until('up');
  t.same(s.states(), ['starting', 'up']);
  t.equal(s.events[0]!.from, null);
  t.equal(up.endpoint?.host, '127.0.0.1');
  t.ok(s.driver.started[0]!.env.includes(`PORT=${up.endpoint?.port}`), 'the endpoint port is the dyno PORT');
  t.notMatch(JSON.stringify(s.events), /s3cr3t/, 'config vars never appear in status or events');
  t.same([...s.deps.slugs.pins], ['app1-web-1-abc'], 'the running dyno pins its slug');
});

t.test('a worker dyno is up once running, without PORT or endpoint', async (t) => {
  const s = setup(t);
  const d = new Dyno(spec({ type: 'worker', name: 'worker.1', id: 'app1-worker-1-abc' }), s.deps);
  d.begin();
  const up = await s.until('up');
  t.equal(up.endpoint, undefined);
  t.notOk(s.driver.started[0]!.env.some((e) => e.startsWith('PORT=')));
});

t.test('an unexpected exit is a crash with the exit status, then at once a restart in a fresh container', async (t) => {
  const s = setup(t);
  const d = new Dyno(spec(), s.deps);
  d.begin();
  await s.until('up');
  s.driver.exit('app1-web-1-abc', { code: 1, signal: null, oomKilled: false });
  const crashed = await s.until('crashed');
  t.same(crashed.exit, { code: 1, signal: null });
  t.match(crashed.reason, { code: 'DYNO_CRASHED' });
  t.equal(crashed.endpoint, undefined, 'a crashed dyno has no endpoint');
  const again = await s.until('up', 2);
  t.same(s.states(), ['starting', 'up', 'crashed', 'starting', 'up']);
  t.same(s.driver.destroyed, ['app1-web-1-abc'], 'the crashed container was removed before the new one started');
  t.equal(s.driver.started.length, 2);
  t.equal(s.events[3]!.status.exit, undefined, 'the new start carries no stale exit status');
  t.equal(s.events[3]!.status.reason, undefined);
  t.ok(again.endpoint, 'up again with an endpoint');
  t.equal(s.ports.inUse, 1, 'one port: the first went back to the pool');
  t.same([...s.deps.slugs.pins], ['app1-web-1-abc'], 'the slug stayed pinned across the restart');
  t.equal(d.crashCount, 1);
  await d.stop(1000);
  t.same(s.states().slice(-2), ['stopping', 'down']);
  t.same([...s.deps.slugs.pins], [], 'down: the slug is unpinned');
  t.equal(s.ports.inUse, 0);
});

t.test('a crash loop backs off: at once, then base, 2x base, capped', async (t) => {
  const s = setup(t, { restartPolicy: { baseMs: 400, capMs: 800, stableAfterMs: 60_000, jitter: 0 } });
  const d = new Dyno(spec({ type: 'worker', name: 'worker.1', id: 'app1-worker-1-abc' }), s.deps);
  d.begin();
  const gaps: number[] = [];
  for (let n = 1; n <= 4; n++) {
    await s.until('up', n);
    s.driver.exit('app1-worker-1-abc', { code: 1, signal: null, oomKilled: false });
    await s.until('starting', n + 1);
    const crashedAt = s.events.filter((e) => e.status.state === 'crashed')[n - 1]!.at;
    gaps.push(s.events.filter((e) => e.status.state === 'starting')[n]!.at - crashedAt);
  }
  // Expected 0, 400, 800, 800 ms (the cap); timers fire late, never early (a loaded CI
  // machine has delayed them by ~150 ms).
  t.ok(gaps[0]! < 200, `first restart at once (${gaps[0]} ms)`);
  for (const [i, want] of [[1, 400], [2, 800], [3, 800]] as const) {
    t.ok(gaps[i]! >= want - 5 && gaps[i]! < want + 300, `restart ${i + 1} after ${gaps[i]} ms (want ${want})`);
  }
  t.equal(d.crashCount, 4);
  await d.stop(1000);
});

t.test('stop while a crashed dyno waits for its restart: down, and nothing starts later', async (t) => {
  const s = setup(t, { restartPolicy: { baseMs: 200, capMs: 200, stableAfterMs: 60_000, jitter: 0 } });
  const d = new Dyno(spec({ type: 'worker', name: 'worker.1', id: 'app1-worker-1-abc' }), s.deps);
  d.begin();
  await s.until('up');
  s.driver.exit('app1-worker-1-abc', { code: 1, signal: null, oomKilled: false });
  await s.until('up', 2);
  s.driver.exit('app1-worker-1-abc', { code: 1, signal: null, oomKilled: false });
  await s.until('crashed', 2);
  t.ok(d.restartPending, 'waiting 200 ms before the next start');
  await d.stop(1000);
  await new Promise((r) => setTimeout(r, 350));
  t.same(s.states(), ['starting', 'up', 'crashed', 'starting', 'up', 'crashed', 'down']);
  t.equal(s.driver.started.length, 2, 'no third container');
  t.notOk(d.restartPending);
  t.same([...s.deps.slugs.pins], []);
});

t.test('a one-off dyno (run.1) is never restarted; its exit code is reported', async (t) => {
  const s = setup(t);
  const d = new Dyno(spec({ type: 'run', name: 'run.1', id: 'app1-run-1-abc' }), s.deps);
  d.begin();
  await s.until('up');
  s.driver.exit('app1-run-1-abc', { code: 3, signal: null, oomKilled: false });
  const crashed = await s.until('crashed');
  t.same(crashed.exit, { code: 3, signal: null });
  await new Promise((r) => setTimeout(r, 100));
  t.same(s.states(), ['starting', 'up', 'crashed']);
  t.equal(s.driver.started.length, 1);
  t.notOk(d.restartPending);
  t.same([...s.deps.slugs.pins], [], 'no restart coming: the slug is unpinned');
  await d.stop(1000);
  t.same(s.states(), ['starting', 'up', 'crashed', 'down'], 'stopping a crashed dyno just forgets it');
});

t.test('an OOM kill is reported as R15 from the driver, not from the exit code', async (t) => {
  const s = setup(t);
  const d = new Dyno(spec(), s.deps);
  d.begin();
  await s.until('up');
  s.driver.exit('app1-web-1-abc', { code: 137, signal: 'SIGKILL', oomKilled: true });
  t.match((await s.until('crashed')).reason, { code: 'DYNO_OOM_KILLED', message: /R15/ });
});

t.test('R10: a web dyno that never binds $PORT is killed and reported crashed', async (t) => {
  const s = setup(t, { bootTimeoutMs: 300 });
  s.driver.listen = false;
  const d = new Dyno(spec(), s.deps);
  d.begin();
  const crashed = await s.until('crashed');
  t.match(crashed.reason, { code: 'DYNO_BOOT_TIMEOUT', message: /R10/ });
  t.same(s.driver.signals.slice(0, 1), ['SIGKILL']);
  t.same(s.states().slice(0, 2), ['starting', 'crashed']);
  await d.stop(1000);
});

t.test('stop reports stopping before any signal, then down with the exit status', async (t) => {
  const s = setup(t);
  const order: string[] = [];
  s.deps.onTransition = ((orig) => (from: DynoStateName | null, st: DynoStatus) => { order.push(`state:${st.state}`); orig(from, st); })(s.deps.onTransition);
  const signal = s.driver.signal.bind(s.driver);
  s.driver.signal = async (h, sig) => { order.push(`signal:${sig}`); return signal(h, sig); };
  const d = new Dyno(spec(), s.deps);
  d.begin();
  await s.until('up');
  await d.stop(1000);
  t.same(order, ['state:starting', 'state:up', 'state:stopping', 'signal:SIGTERM', 'state:down']);
  const down = s.events.at(-1)!.status;
  t.same(down.exit, { code: 143, signal: 'SIGTERM' });
  t.equal(down.reason, undefined, 'a graceful stop has no error reason');
});

t.test('R12: a dyno that ignores SIGTERM is killed after the grace', async (t) => {
  const s = setup(t);
  s.driver.ignoreTerm = true;
  const d = new Dyno(spec(), s.deps);
  d.begin();
  await s.until('up');
  await d.stop(200);
  const down = s.events.at(-1)!.status;
  t.equal(down.state, 'down');
  t.match(down.reason, { code: 'DYNO_STOP_TIMEOUT', message: /R12/ });
  t.same(s.driver.signals, ['SIGTERM', 'SIGKILL']);
});

t.test('a slug failure crashes the dyno with the slug error code and starts nothing', async (t) => {
  const s = setup(t, { slugError: new SlipwayError('SLUG_CHECKSUM_MISMATCH', 'digest differs') });
  const d = new Dyno(spec(), s.deps);
  d.begin();
  const crashed = await s.until('crashed');
  t.match(crashed.reason, { code: 'SLUG_CHECKSUM_MISMATCH' });
  await new Promise((r) => setTimeout(r, 100));
  t.same(s.states(), ['starting', 'crashed'], 'not retryable: no restart');
  t.same(s.driver.started, []);
});

t.test('stop during launch reports stopping and down, and no container is left running', async (t) => {
  const s = setup(t);
  let release!: () => void;
  s.deps.slugs.ensure = (_ref: unknown, o: { pin: string }) => new Promise((r) => { release = () => { s.deps.slugs.pins.add(o.pin); r({ path: '/slugs/x' }); }; });
  const d = new Dyno(spec(), s.deps);
  d.begin();
  await d.stop(1000);
  t.same(s.states(), ['starting', 'stopping', 'down']);
  release();
  await new Promise((r) => setTimeout(r, 50));
  t.same(s.driver.started, [], 'launch noticed the stop and started nothing');
  t.equal(s.ports.inUse, 0);
  t.same([...s.deps.slugs.pins], [], 'the slug it had fetched was unpinned');
});

t.test('memory: the runtime limit is 2x the quota; R14 over the quota is a rate-limited warning; R15 at 2x kills and restarts', async (t) => {
  const s = setup(t);
  const MB = 1024 * 1024;
  const d = new Dyno(spec({ type: 'worker', name: 'worker.1', id: 'app1-worker-1-abc' }), { ...s.deps, memory: { r15Multiple: 2, r14IntervalMs: 60_000 } });
  d.begin();
  await s.until('up');
  t.equal(s.driver.started[0]!.limits.memoryBytes, 1024 * MB, 'a 512 MB dyno may burst to 1 GB before the kernel steps in');

  s.driver.memory = { workingSetBytes: 300 * MB, swapBytes: 0 };
  await d.sampleMemory();
  t.match(d.memory(), { quotaBytes: 512 * MB, limitBytes: 1024 * MB, workingSetBytes: 300 * MB, r14Count: 0 });

  s.driver.memory = { workingSetBytes: 600 * MB, swapBytes: 10 * MB };
  await d.sampleMemory();
  await d.sampleMemory();
  t.equal(d.memory()!.r14Count, 1, 'R14 once: the second sample is within the rate limit');
  t.equal(d.current, 'up', 'R14 is a warning: the dyno keeps running');
  t.same(s.driver.signals, []);

  s.driver.memory = { workingSetBytes: 1024 * MB, swapBytes: 0 };
  await d.sampleMemory();
  const crashed = await s.until('crashed');
  t.match(crashed.reason, { code: 'DYNO_MEMORY_EXCEEDED', message: /R15 \(Memory quota vastly exceeded\): 1024 MB of 512 MB/ });
  t.same(s.driver.signals, ['SIGKILL']);
  await s.until('up', 2);
  t.equal(d.memory(), undefined, 'the restarted dyno has not been sampled yet');
  t.equal(s.events.filter((e) => e.status.state === 'starting')[1]!.status.reason, undefined);
  await d.stop(1000);
});

t.test('a dyno that is not running is not sampled', async (t) => {
  const s = setup(t);
  s.driver.memory = { workingSetBytes: 10_000 * 1024 * 1024, swapBytes: 0 };
  const d = new Dyno(spec({ type: 'run', name: 'run.1', id: 'app1-run-1-abc' }), s.deps);
  await d.sampleMemory();
  t.equal(d.memory(), undefined, 'before launch');
  d.begin();
  await s.until('up');
  s.driver.exit('app1-run-1-abc', { code: 0, signal: null, oomKilled: false });
  await s.until('crashed');
  await d.sampleMemory();
  t.same(s.driver.signals, [], 'a crashed dyno is never R15-killed');
});
