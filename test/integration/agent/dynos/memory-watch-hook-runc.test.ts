// The warning before R15 with real runc, conmon, overlayfs and cgroups (v1 here: no PSI, so the
// trend alone decides). Two worker dynos with a 32 MB quota (R15 line and kernel limit 64 MB)
// run side by side under the manager's own memory round (memory.sampleMs 200 ms): one leaks
// 1 MB into /dev/shm (tmpfs, charged to its cgroup) every 0.4 s; the other holds 8 MB and
// frees and takes 4 MB more every 0.3 s (a GC-like square wave). With a 15 s horizon the leak
// is warned about ~10 s in, long before it reaches 64 MB (~25 s). A user checks: the leaker's
// log stream has the `slipway[worker.1]: Memory projected to reach the R15 limit` line and the
// outbox the `memory_warning` event (valid by the protocol's schema), both while it is up and
// before its R15; the steady dyno got neither over the same time.
import t from 'tap';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { DynoManager } from '../../../../agent/dynos/manager.js';
import { LogShipper } from '../../../../agent/dynos/log-shipper.js';
import { memoryWatchSettings } from '../../../../agent/dynos/memory-watch-hook.js';
import { PortAllocator } from '../../../../agent/dynos/ports.js';
import { EventOutbox } from '../../../../agent/link/outbox.js';
import { RuncDriver } from '../../../../agent/runtime/runc/driver.js';
import { createSlugStore } from '../../../../agent/slugs/factory.js';
import { StackStore } from '../../../../agent/stacks/stacks.js';
import { decodeAgentMessage, type DynoSpec, type DynoStatus, type MemoryWarning } from '../../../../shared/protocol.js';
import { busyboxStack, mountsUnder, processesMentioning, quietLogger, removeCgroupParent, runcContainers, tempDir, uniqueName } from '../../../helpers/host.js';
import { makeSlug } from '../../../helpers/slugs.js';

const MB = 1024 * 1024;
const HORIZON_MS = 15_000;
const cgroupParent = `/${uniqueName('slipway-test-')}`;
const log = quietLogger();
const driver = new RuncDriver({ cgroupParent, log });

t.test('a slowly leaking dyno is warned before R15; a steady one beside it is not', async (t) => {
  const dir = await tempDir(t, 'slipway-mw-');
  const slug = await makeSlug(dir, { Procfile: 'worker: true\n' });
  const slugFile = join(dir, 'slug.tgz');
  await writeFile(slugFile, slug.bytes);
  const slugs = createSlugStore({ dir: join(dir, 'slugs'), owner: { uid: 64000, gid: 64000 }, budgetBytes: 1024 ** 3, floorBytes: 0, s3: {} }, log);
  await slugs.init();
  const logs = new LogShipper({ pollMs: 100 });
  logs.start();
  const outbox = new EventOutbox();
  const warnedAt = new Map<string, number>();
  const seen: { id: string; state: DynoStatus['state']; status: DynoStatus; at: number }[] = [];
  const manager = new DynoManager({
    driver, slugs, stacks: new StackStore(join(busyboxStack(), '..')), log, logs,
    ports: new PortAllocator(43000 + Math.floor(Math.random() * 1000), 44999, '127.0.0.1'),
    settings: { dynosDir: join(dir, 'dynos'), address: '127.0.0.1', dynoUser: { uid: 64000, gid: 64000 }, bootTimeoutMs: 10_000, nofile: 1024 },
    allocatableBytes: () => 1024 * MB,
    stopGraceMs: 500,
    // As start.ts wires it, with the link's memoryWarning replaced by the outbox it feeds.
    memory: memoryWatchSettings({ r15Multiple: 2, r14IntervalMs: 60_000, warnHorizonMs: HORIZON_MS }, (w: MemoryWarning) => {
      if (!warnedAt.has(w.dynoId)) warnedAt.set(w.dynoId, Date.now());
      outbox.pushMemoryWarning(w);
    }),
    memorySampleMs: 200,
  });
  manager.onTransition((_from, status) => seen.push({ id: status.id, state: status.state, status, at: Date.now() }));
  const stopSampling = manager.startMemorySampling();
  const prefix = uniqueName('mw');
  const spec = (name: string, command: string): DynoSpec => ({
    id: `${prefix}-${name}`, app: 'mwapp', type: 'worker', name: 'worker.1', command, env: {},
    size: { name: 'standard-1x', memoryMb: 32, cpuShares: 512, pidsLimit: 64 },
    slug: { url: `file://${slugFile}`, sha256: slug.sha256 }, stack: 'busybox',
  });
  // Bounded: 80 MB at most, more than the 64 MB limit; a refused write (the cgroup is full) ends it.
  const leak = spec('leak', 'i=0; while [ $i -lt 80 ]; do head -c 1048576 /dev/zero >> /dev/shm/leak || exit 9; i=$((i+1)); sleep 0.4; done; sleep 600');
  const steady = spec('steady', 'head -c 8388608 /dev/zero > /dev/shm/hold; while :; do head -c 4194304 /dev/zero > /dev/shm/gc; sleep 0.3; rm /dev/shm/gc; sleep 0.3; done');
  t.teardown(async () => {
    stopSampling();
    const stopping = async (id: string) => {
      try {
        await manager.stop(id, 0).done;
      } catch {
        // already down and forgotten
      }
    };
    await Promise.all([leak.id, steady.id].map(stopping));
    logs.stop();
    removeCgroupParent(cgroupParent);
  });
  const startedAt = Date.now();
  manager.start(leak);
  manager.start(steady);

  // The leaker crashes (R15 from a sample, the kernel's OOM kill, or its refused write) within
  // about 25 s of its start; 60 s is the bound.
  const crashed = await until(() => seen.find((s) => s.id === leak.id && s.state === 'crashed'), 60_000, 'the leaking dyno to crash');
  const ranMs = crashed.at - startedAt;
  // (A crash restart is immediate: the reason is the crashed report's.)
  const reason = crashed.status.reason;
  t.match(reason, { message: /R15|status 9/ }, `it crashed of its memory after ${ranMs} ms: ${reason?.message}`);

  // The warning: before the crash, while the dyno was up, with R15 still ahead.
  const at = warnedAt.get(leak.id);
  t.ok(at !== undefined && at < crashed.at, `warned ${at === undefined ? 'never' : `${crashed.at - at} ms before the crash`}`);
  const events = outbox.unacked().filter((e) => e.event.kind === 'memory_warning');
  t.equal(events.length, 1, 'one memory_warning event: once per episode');
  const ev = events[0]!;
  t.ok(decodeAgentMessage(JSON.stringify(ev)).ok, 'a valid agent message by the protocol schema (what the coordinator checks)');
  if (ev.event.kind !== 'memory_warning') throw new Error('unreachable');
  t.match(ev.event, { dynoId: leak.id, app: 'mwapp', name: 'worker.1', limitBytes: 64 * MB });
  t.notOk('pressureSome10' in ev.event, 'cgroup v1: no PSI, the trend alone');
  t.ok(ev.event.projectedMs <= HORIZON_MS, `projected ${ev.event.projectedMs} ms, within the ${HORIZON_MS} ms horizon`);
  t.ok(ev.event.workingSetBytes < 64 * MB, `at ${Math.round(ev.event.workingSetBytes / MB)} MB of the 64 MB line`);
  t.ok(ev.event.slopeBytesPerSec > 1 * MB && ev.event.slopeBytesPerSec < 5 * MB, `slope ${(ev.event.slopeBytesPerSec / MB).toFixed(2)} MB/s (the dyno leaks ~2.5 MB/s)`);
  const upAt = seen.find((s) => s.id === leak.id && s.state === 'up')!.at;
  t.ok(at! > upAt, 'while it was up');

  const leakLines = logs.recent(leak.id);
  const warningLines = leakLines.filter((l) => /slipway\[worker\.1\]: Memory projected to reach the R15 limit in ~\d+ min$/.test(l));
  t.equal(warningLines.length, 1, `one line in its log stream: ${warningLines[0] ?? leakLines.join('\n')}`);
  const r15Line = leakLines.findIndex((l) => /Error R15|Process exited/.test(l));
  t.ok(r15Line < 0 || leakLines.indexOf(warningLines[0]!) < r15Line, 'the warning comes before the crash in the log');

  // The steady dyno ran side by side the whole time: up, sampled, never warned.
  t.equal(manager.get(steady.id)!.state, 'up', 'the steady dyno is still up');
  const m = manager.memoryByDyno().find((x) => x.id === steady.id);
  t.ok(m && m.workingSetBytes > 6 * MB, `and was sampled (${Math.round((m?.workingSetBytes ?? 0) / MB)} MB)`);
  t.same(logs.recent(steady.id).filter((l) => l.includes('Memory projected')), [], 'no warning line');
  t.equal(outbox.unacked().filter((e) => e.event.kind === 'memory_warning' && e.event.dynoId === steady.id).length, 0, 'no warning event');

  stopSampling();
  await Promise.all([manager.stop(leak.id, 500).done, manager.stop(steady.id, 500).done]);
  for (const id of [leak.id, steady.id]) {
    t.same(runcContainers(RuncDriver.containerId(id)), [], `${id}: no container left`);
    t.same(processesMentioning(id), [], `${id}: no process left`);
  }
  t.same(mountsUnder(dir), [], 'no mount left');
});

async function until<T>(get: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
