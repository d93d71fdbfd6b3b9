// Dyno supervision against real runc, conmon, overlayfs and cgroups: the crash-restart
// backoff, R10 and R12 as an operator sees them in the dyno's reported states. The slug comes
// through the real slug store (file://), the stack is the busybox test stack. Times are
// shortened by configuration (restart base 300 ms, boot timeout 1 s, grace 500 ms).
import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Dyno } from '../../../../agent/dynos/dyno.js';
import { PortAllocator } from '../../../../agent/dynos/ports.js';
import type { RestartPolicyOptions } from '../../../../agent/dynos/restart-policy.js';
import { RuncDriver } from '../../../../agent/runtime/runc/driver.js';
import { createSlugStore } from '../../../../agent/slugs/factory.js';
import { StackStore } from '../../../../agent/stacks/stacks.js';
import type { DynoSpec, DynoStateName, DynoStatus } from '../../../../shared/protocol.js';
import { busyboxStack, cgroupChildren, mountsUnder, processesMentioning, quietLogger, removeCgroupParent, runcContainers, tempDir, uniqueName } from '../../../helpers/host.js';
import { makeSlug } from '../../../helpers/slugs.js';

const cgroupParent = `/${uniqueName('slipway-test-')}`;
const log = quietLogger();
const driver = new RuncDriver({ cgroupParent, log });
const stacksDir = join(busyboxStack(), '..');
const prefix = uniqueName('sv');
const dynos: Dyno[] = [];

t.teardown(async () => {
  // Whatever a failed test left running is stopped (and so removed) here.
  await Promise.all(dynos.map((d) => d.stop(0).catch(() => undefined)));
  removeCgroupParent(cgroupParent);
});

interface Seen { state: DynoStateName; at: number; status: DynoStatus }

async function world(t: Test, opts: { restartPolicy?: RestartPolicyOptions; bootTimeoutMs?: number; memoryMb?: number } = {}) {
  const dir = await tempDir(t, 'slipway-sv-');
  const slug = await makeSlug(dir, { Procfile: 'web: true\n' });
  const slugFile = join(dir, 'slug.tgz');
  await writeFile(slugFile, slug.bytes);
  const slugs = createSlugStore({ dir: join(dir, 'slugs'), owner: { uid: 64000, gid: 64000 }, budgetBytes: 1024 ** 3, floorBytes: 0, s3: {} }, log);
  await slugs.init();
  const ports = new PortAllocator(41000 + Math.floor(Math.random() * 1000), 42999, '127.0.0.1');
  const seen: Seen[] = [];
  const make = (name: string, type: string, command: string): Dyno => {
    const spec: DynoSpec = {
      id: `${prefix}-${name}`, app: 'svapp', type, name: `${type}.1`, command, env: {},
      size: { name: 'standard-1x', memoryMb: opts.memoryMb ?? 128, cpuShares: 512, pidsLimit: 64 },
      slug: { url: `file://${slugFile}`, sha256: slug.sha256 }, stack: 'busybox',
    };
    const d = new Dyno(spec, {
      driver, slugs, ports, stacks: new StackStore(stacksDir), log,
      settings: { dynosDir: join(dir, 'dynos'), address: '127.0.0.1', dynoUser: { uid: 64000, gid: 64000 }, bootTimeoutMs: opts.bootTimeoutMs ?? 10_000, nofile: 1024 },
      onTransition: (_from, status) => { seen.push({ state: status.state, at: Date.now(), status }); },
      ...(opts.restartPolicy ? { restartPolicy: opts.restartPolicy } : {}),
      memory: { r15Multiple: 2, r14IntervalMs: 60_000 },
    });
    dynos.push(d);
    return d;
  };
  const nth = async (state: DynoStateName, n: number, timeoutMs = 20_000): Promise<Seen> => {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const hits = seen.filter((s) => s.state === state);
      if (hits.length >= n) return hits[n - 1]!;
      if (Date.now() > end) throw new Error(`no ${state} #${n} within ${timeoutMs} ms: ${seen.map((s) => s.state).join(',')}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const nothingLeft = (t: Test, id: string) => {
    t.same(runcContainers(RuncDriver.containerId(id)), [], 'no container left');
    t.same(mountsUnder(dir), [], 'no mount left');
    t.same(processesMentioning(id), [], 'no process left');
  };
  return { seen, make, nth, nothingLeft, ports };
}

t.test('a crash loop restarts at once, then after the base, then doubled, each time on a fresh /app', async (t) => {
  const w = await world(t, { restartPolicy: { baseMs: 300, capMs: 600, stableAfterMs: 60_000, jitter: 0 } });
  // Exit 4 would mean /app still held the previous run's file: a restart must start from the slug.
  const d = w.make('loop', 'worker', '[ -e /app/ran-before ] && exit 4; touch /app/ran-before; sleep 0.2; exit 3');
  d.begin();
  await w.nth('starting', 5);
  const crashes = w.seen.filter((s) => s.state === 'crashed').slice(0, 4);
  const restarts = w.seen.filter((s) => s.state === 'starting').slice(1, 5);
  for (const c of crashes) {
    t.same(c.status.exit, { code: 3, signal: null }, 'each crash reports the exit status (3: /app was fresh)');
    t.match(c.status.reason, { code: 'DYNO_CRASHED' });
  }
  const gaps = restarts.map((r, i) => r.at - crashes[i]!.at);
  t.comment(`crash-to-restart gaps: ${gaps.join(', ')} ms (configured 0, 300, 600, 600)`);
  t.ok(gaps[0]! < 250, `first restart at once (${gaps[0]} ms)`);
  for (const [i, want] of [[1, 300], [2, 600], [3, 600]] as const) {
    t.ok(gaps[i]! >= want - 5 && gaps[i]! < want + 500, `restart ${i + 1} after ${gaps[i]} ms (configured ${want})`);
  }
  t.same(w.seen.slice(0, 6).map((s) => s.state), ['starting', 'up', 'crashed', 'starting', 'up', 'crashed']);
  t.ok(d.crashCount >= 4);
  await d.stop(1000);
  t.equal(w.seen.at(-1)!.state, 'down');
  w.nothingLeft(t, d.id);
});

t.test('R10: a web dyno that never binds $PORT is killed at the boot timeout, reported, and restarted', async (t) => {
  const w = await world(t, { bootTimeoutMs: 1000 });
  const d = w.make('r10', 'web', 'echo not listening; sleep 600');
  d.begin();
  const crashed = await w.nth('crashed', 1);
  const started = w.seen[0]!.at;
  t.match(crashed.status.reason, { code: 'DYNO_BOOT_TIMEOUT', message: /R10 \(Boot timeout\).*1 seconds/ });
  t.equal(crashed.status.exit?.signal, 'SIGKILL', 'killed, not asked');
  t.ok(crashed.at - started >= 1000 && crashed.at - started < 5000, `crashed ${crashed.at - started} ms after starting`);
  await w.nth('starting', 2);
  t.pass('restarted after R10 (the first restart is immediate)');
  await d.stop(1000);
  t.equal(w.ports.inUse, 0, 'its port went back to the pool');
  w.nothingLeft(t, d.id);
});

t.test('R12: a dyno that ignores SIGTERM is killed after the grace and reported down with R12', async (t) => {
  const w = await world(t);
  // Every process of the dyno gets the SIGTERM; the loop ignores it and outlives its sleeps.
  const d = w.make('r12', 'worker', 'trap "" TERM; while :; do sleep 1; done');
  d.begin();
  await w.nth('up', 1);
  const t0 = Date.now();
  await d.stop(500);
  const elapsed = Date.now() - t0;
  const states = w.seen.map((s) => s.state);
  t.same(states, ['starting', 'up', 'stopping', 'down']);
  const down = w.seen.at(-1)!.status;
  t.match(down.reason, { code: 'DYNO_STOP_TIMEOUT', message: /R12 \(Exit timeout\)/ });
  t.equal(down.exit?.signal, 'SIGKILL');
  t.ok(elapsed >= 500 && elapsed < 10_000, `stop took ${elapsed} ms with a 500 ms grace`);
  w.nothingLeft(t, d.id);
  t.same(cgroupChildren(cgroupParent), [], 'no dyno cgroup left');
});

const MB = 1024 * 1024;

t.test('R14: a dyno over its quota is warned and keeps running; the kernel limit is twice the quota', async (t) => {
  const w = await world(t, { memoryMb: 32 });
  // 40 MB in /dev/shm (tmpfs: charged to the dyno's cgroup, and not reclaimable page cache).
  const d = w.make('r14', 'worker', 'head -c 41943040 /dev/zero > /dev/shm/hog && echo held && sleep 600');
  d.begin();
  await w.nth('up', 1);
  const cgroupPath = `${cgroupParent}/${RuncDriver.containerId(d.id)}`;
  t.equal(Number(readFileSync(`/sys/fs/cgroup/memory${cgroupPath}/memory.limit_in_bytes`, 'utf8')), 64 * MB, 'the cgroup limit is 2 x 32 MB');
  const end = Date.now() + 10_000;
  while ((d.memory()?.r14Count ?? 0) === 0 && Date.now() < end) {
    await d.sampleMemory();
    await new Promise((r) => setTimeout(r, 50));
  }
  const m = d.memory()!;
  t.equal(m.r14Count, 1, `R14 after the dyno held ${Math.round(m.workingSetBytes / MB)} MB`);
  t.ok(m.workingSetBytes > 32 * MB && m.workingSetBytes < 64 * MB, `working set ${Math.round(m.workingSetBytes / MB)} MB, between the quota and the limit`);
  t.equal(d.current, 'up', 'a warning only: still up');
  await d.stop(500);
  w.nothingLeft(t, d.id);
});

t.test('R15: a kernel OOM kill at the limit is reported as R15 (from the cgroup counter) and the dyno restarts', async (t) => {
  const w = await world(t, { memoryMb: 16 });
  // A shell string of 50 MB: past the 32 MB limit.
  const d = w.make('r15', 'worker', 'x=$(head -c 52428800 /dev/zero | tr "\\0" x); echo survived; sleep 600');
  d.begin();
  const crashed = await w.nth('crashed', 1);
  t.match(crashed.status.reason, { code: 'DYNO_OOM_KILLED', message: /R15/ });
  t.equal(crashed.status.exit?.code === 0, false, 'not a clean exit');
  await w.nth('starting', 2);
  t.pass('restarted after R15');
  await d.stop(500);
  w.nothingLeft(t, d.id);
});
