// One dyno owner (agent/dynos/dyno.ts) over the fake driver and on fake time, for the unit
// tests of the owner and of its hooks: the driver and the clock are the only fakes (the
// readiness probe connects to a real TCP listener; runc is exercised in test/integration).
// `until` waits in real time, bounded, for reports that async work (not timers) produces; every
// timer of the dyno waits for the test to step `clock`.
import { Dyno, type DynoDeps } from '../../agent/dynos/dyno.js';
import { PortAllocator } from '../../agent/dynos/ports.js';
import type { DynoSpec, DynoStateName, DynoStatus } from '../../shared/protocol.js';
import { quietLogger } from './host.js';
import { FakeDriver } from './fake-driver.js';
import { SteppedClock } from './stepped-clock.js';

export const MB = 1024 * 1024;

export function dynoSpec(over: Partial<DynoSpec> = {}): DynoSpec {
  return {
    id: 'app1-web-1-abc', app: 'app1', type: 'web', name: 'web.1', command: 'run', env: { SECRET: 's3cr3t' },
    size: { name: 'standard-1x', memoryMb: 512, cpuShares: 1024, pidsLimit: 256 },
    slug: { url: 'http://127.0.0.1/x.tgz', sha256: 'a'.repeat(64) }, stack: 'busybox', ...over,
  };
}

export const workerSpec = (over: Partial<DynoSpec> = {}) => dynoSpec({ type: 'worker', name: 'worker.1', id: 'app1-worker-1-abc', ...over });

let nextPort = 32000 + Math.floor(Math.random() * 2000);

export interface Reported { from: DynoStateName | null; status: DynoStatus; at: number }

export function dynoSetup(t: { teardown(fn: () => unknown): void }, opts: { bootTimeoutMs?: number; slugError?: Error } = {}) {
  const clock = new SteppedClock();
  const driver = new FakeDriver(clock);
  t.teardown(() => driver.close());
  const ports = new PortAllocator(nextPort, nextPort + 9, '127.0.0.1');
  nextPort += 10;
  const events: Reported[] = [];
  const slugs = {
    pins: new Set<string>(),
    async ensure(_ref: unknown, o: { pin: string }): Promise<{ path: string }> {
      if (opts.slugError) throw opts.slugError;
      this.pins.add(o.pin);
      return { path: '/slugs/x' };
    },
    unpin(_sha: string, owner: string) { this.pins.delete(owner); },
  };
  const deps = {
    driver, ports, slugs, clock,
    stacks: { resolve: () => ({ dir: '/stacks/busybox', shell: '/bin/sh' }) },
    settings: { dynosDir: '/dynos', address: '127.0.0.1', dynoUser: { uid: 64000, gid: 64000 }, bootTimeoutMs: opts.bootTimeoutMs ?? 5_000, nofile: 10000 },
    log: quietLogger(),
    onTransition: (from: DynoStateName | null, status: DynoStatus): void => { events.push({ from, status, at: clock.now() }); },
  } satisfies DynoDeps;
  const states = () => events.map((e) => e.status.state);
  /** The `nth` (1-based) report of `state`, waiting up to 10 s (real time) for it. */
  const until = async (state: DynoStateName, nth = 1): Promise<DynoStatus> => {
    const end = Date.now() + 10_000;
    const matching = () => events.filter((e) => e.status.state === state);
    while (matching().length < nth) {
      if (Date.now() > end) throw new Error(`never reached ${state} #${nth}: ${states().join(',')}`);
      await new Promise((r) => setTimeout(r, 2));
    }
    return matching()[nth - 1]!.status;
  };
  /** Lets the async work that is under way settle (no timer of the dyno's is involved). */
  const settle = async () => {
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  };
  const make = (spec: DynoSpec, over: Partial<DynoDeps> = {}) => new Dyno(spec, { ...deps, ...over });
  return { clock, driver, ports, slugs, events, states, until, settle, deps, make };
}
