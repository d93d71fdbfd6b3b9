// A dyno's cgroup on real cgroup v2 (systemd 252, kernel 6.1, in the guest that
// scripts/vm/run.sh boots): the limits the agent asks for (agent/dynos/container-spec.ts,
// agent/runtime/runc/oci-config.ts) read back from the kernel's files, an OOM kill told from
// memory.events, the working set from memory.stat (agent/host/cgroup-stats.ts) against a dyno
// that holds a known amount of memory, what an exit record and the memory warning read
// (memory.peak, cpu.stat's nr_throttled, memory.pressure: issue 14), and a fork bomb capped by pids.max. The dynos are
// started by the real runc driver under conmon, as the agent starts them. On this machine kind
// (cgroup v1) the same code is covered by fixtures only: test/fixtures/cgroup-v2.
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { RuncDriver } from '../../agent/runtime/runc/driver.js';
import type { ContainerSpec, DynoHandle } from '../../agent/runtime/driver.js';
import { dynoContainerSpec } from '../../agent/dynos/container-spec.js';
import { tailLog } from '../../agent/dynos/log-tail.js';
import { readCgroupPressure } from '../../agent/dynos/memory-watch-hook.js';
import { cfsQuotaUs, CPU_PERIOD_US } from '../../agent/runtime/hardening.js';
import { DEFAULT_SIZES } from '../../shared/sizes.js';
import type { DynoSize } from '../../shared/protocol.js';
import { busyboxStack, cgroupChildren, mountsUnder, processesMentioning, quietLogger, removeCgroupParent, runcContainers, uniqueName } from '../helpers/host.js';
import { assertProductionLikeHost, guestMs, waitUntil } from './helpers.js';

const MB = 1024 * 1024;
const DYNO_UID = 64000;
const CGROUP_ROOT = '/sys/fs/cgroup';

const cgroupParent = `/${uniqueName('slipway-vm-cg-')}`;
const prefix = uniqueName('vmcg');
const driver = new RuncDriver({ cgroupParent, log: quietLogger() });
const root = mkdtempSync(join(tmpdir(), 'slipway-vm-cgroup-'));
const slugDir = join(root, 'slug');
mkdirSync(join(slugDir, 'app'), { recursive: true });
chownSync(join(slugDir, 'app'), DYNO_UID, DYNO_UID);
const handles: DynoHandle[] = [];
t.teardown(async () => {
  for (const h of handles) await driver.destroy(h).catch(() => undefined);
  removeCgroupParent(cgroupParent);
  rmSync(root, { recursive: true, force: true });
});

/** A dyno's ContainerSpec exactly as the agent builds it for a size (r15Multiple 2: the
 * kernel's limit is twice the quota, DEFAULT_MEMORY_SETTINGS). */
function agentSpec(name: string, command: string, size: DynoSize): ContainerSpec {
  return dynoContainerSpec({
    spec: { id: `${prefix}-${name}`, name: 'worker.1', env: {}, command, stack: 'busybox', size },
    stack: { dir: busyboxStack(), shell: '/bin/sh' },
    slugDir, port: undefined,
    host: { dynosDir: join(root, 'dynos'), dynoUser: { uid: DYNO_UID, gid: DYNO_UID }, nofile: 1024, r15Multiple: 2 },
  });
}

async function start(s: ContainerSpec): Promise<DynoHandle> {
  const h = await driver.start(s);
  handles.push(h);
  return h;
}

const cgFile = (h: DynoHandle, file: string) => readFileSync(join(CGROUP_ROOT, h.cgroupPath!, file), 'utf8').trim();
const output = async (h: DynoHandle) => (await tailLog(driver.log(h), 'worker.1', 500)).join('\n');
const flatKeyed = (text: string) => new Map(text.split('\n').map((l) => l.split(' ')).map(([k, v]) => [k!, Number(v)]));

/** Gone the way the agent's stop leaves it: no container, mount, process or cgroup. */
function assertGone(t: Test, h: DynoHandle): void {
  t.same(runcContainers(h.containerId).filter((c) => c === h.containerId), [], 'no container left');
  t.same(mountsUnder(h.dir), [], 'no mount left');
  t.same(processesMentioning(h.dir), [], 'no conmon or dyno process left');
  t.notOk(existsSync(join(CGROUP_ROOT, h.cgroupPath!)), 'the dyno cgroup is removed');
}

t.test('the guest is systemd pid 1 with cgroup v2 only', async (t) => {
  assertProductionLikeHost(t);
});

t.test("a dyno's size reads back from the kernel: memory.max, memory.swap.max, cpu.weight, cpu.max, pids.max", async (t) => {
  const size = { ...DEFAULT_SIZES['standard-1x']!, cpuQuotaPercent: 50 };
  const s = agentSpec('limits', 'echo ready; exec sleep 1000', size);
  const h = await start(s);
  await waitUntil('the dyno to be ready', async () => /ready/.test(await output(h)) || undefined, guestMs(4_000));
  t.equal(h.cgroupPath, `${cgroupParent}/${h.containerId}`, 'the dyno cgroup sits under the cgroup parent');
  t.equal(cgFile(h, 'memory.max'), String(2 * 512 * MB), 'memory.max: twice the 512 MB quota (the R15 line)');
  t.equal(cgFile(h, 'memory.swap.max'), '0', 'memory.swap.max 0: the dyno never swaps');
  // runc 1.1 maps cpu.shares to cpu.weight: 1 + ((shares - 2) * 9999) / 262142, integer division.
  t.equal(cgFile(h, 'cpu.weight'), String(1 + Math.floor(((size.cpuShares - 2) * 9999) / 262142)), `cpu.weight from ${size.cpuShares} shares`);
  t.equal(cgFile(h, 'cpu.max'), `${cfsQuotaUs(50)} ${CPU_PERIOD_US}`, 'cpu.max: half a core');
  t.equal(cgFile(h, 'pids.max'), String(size.pidsLimit), 'pids.max: the size\'s process limit');
  // The dyno's processes are in that cgroup, and only there (v2: one hierarchy, one line).
  const procs = cgFile(h, 'cgroup.procs').split('\n').filter(Boolean);
  t.ok(procs.length >= 1, `the dyno cgroup holds the dyno's processes (${procs.join(' ')})`);
  t.equal(readFileSync(`/proc/${procs[0]}/cgroup`, 'utf8').trim(), `0::${h.cgroupPath}`, 'a dyno process sees exactly its v2 cgroup');
  const parentControllers = readFileSync(join(CGROUP_ROOT, cgroupParent, 'cgroup.subtree_control'), 'utf8');
  for (const c of ['cpu', 'memory', 'pids']) t.match(parentControllers, c, `the cgroup parent delegates ${c} to the dyno`);
  await driver.stop(h, 2_000);
  await driver.destroy(h);
  assertGone(t, h);
});

t.test('an OOM kill is told from memory.events and reported as oomKilled', async (t) => {
  const s = agentSpec('oom', 'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo survived', { ...DEFAULT_SIZES['standard-1x']!, memoryMb: 16 });
  const h = await start(s);
  t.equal(cgFile(h, 'memory.max'), String(32 * MB), 'a 32 MB limit (16 MB quota x 2)');
  const exit = await driver.wait(h);
  t.equal(exit.oomKilled, true, 'the driver reports the exit as an OOM kill');
  t.equal(exit.signal, 'SIGKILL', 'the kernel killed it');
  const events = flatKeyed(cgFile(h, 'memory.events'));
  t.ok((events.get('oom_kill') ?? 0) >= 1, `memory.events counts the kill (oom_kill ${events.get('oom_kill')})`);
  t.ok((events.get('max') ?? 0) >= 1, 'and the times the limit was hit (max)');
  t.notMatch(await output(h), /survived/, 'the hog did not finish');
  await driver.destroy(h);
  assertGone(t, h);
});

t.test('the working set from memory.stat matches what the dyno holds', async (t) => {
  const held = 48 * MB;
  // /dev/shm is a tmpfs inside the dyno: its pages are charged to the dyno's cgroup, are not
  // reclaimable page cache (no swap here), and their amount is exact.
  const s = agentSpec('ws', `head -c ${held} /dev/zero > /dev/shm/held && echo held; exec sleep 1000`, { ...DEFAULT_SIZES['standard-1x']!, memoryMb: 128 });
  const h = await start(s);
  await waitUntil('the dyno to hold its memory', async () => /held/.test(await output(h)) || undefined, guestMs(4_000));
  const stats = await driver.stats(h);
  t.ok(stats, 'the driver reads the dyno\'s stats');
  const memStat = flatKeyed(cgFile(h, 'memory.stat'));
  t.ok((memStat.get('shmem') ?? 0) >= held, `memory.stat counts the held pages as shmem (${memStat.get('shmem')})`);
  // Slack: the busybox shell and sleep, page tables, and the overlay's dentries and inodes.
  const slack = 12 * MB;
  t.ok(stats!.workingSetBytes >= held && stats!.workingSetBytes <= held + slack,
    `working set ${(stats!.workingSetBytes / MB).toFixed(1)} MB is the ${held / MB} MB held, within ${slack / MB} MB`);
  // Two reads a moment apart: the same counter, give or take the shell's next page.
  t.ok(Math.abs(stats!.memoryUsageBytes - Number(cgFile(h, 'memory.current'))) < MB, 'usage is memory.current');
  t.ok(stats!.pids >= 1, `pids.current is read (${stats!.pids})`);
  t.equal(stats!.swapBytes, 0, 'no swap');
  await driver.stop(h, 2_000);
  await driver.destroy(h);
  assertGone(t, h);
});

t.test("what an exit record and the memory warning read on v2: memory.peak, cpu.stat's nr_throttled, memory.pressure (PSI)", async (t) => {
  const held = 40 * MB;
  // One dyno holds 40 MB and frees it: the peak outlives the memory. Another spins on a tenth
  // of a core: it is throttled every period. (Apart: under TCG a tenth of a core is too slow
  // to write the 40 MB within the bound.)
  const hold = await start(agentSpec('peak', `head -c ${held} /dev/zero > /dev/shm/held && rm /dev/shm/held && echo freed; exec sleep 1000`,
    { ...DEFAULT_SIZES['standard-1x']!, memoryMb: 128 }));
  const spin = await start(agentSpec('spin', 'while :; do :; done', { ...DEFAULT_SIZES['standard-1x']!, cpuQuotaPercent: 10 }));
  await waitUntil('the dyno to free its memory', async () => /freed/.test(await output(hold)) || undefined, guestMs(4_000));
  const held1 = (await driver.stats(hold))!;
  t.ok(held1.peakMemoryBytes! >= held, `the peak (memory.peak) keeps the ${held / MB} MB held earlier: ${(held1.peakMemoryBytes! / MB).toFixed(1)} MB`);
  t.ok(held1.workingSetBytes < held, `while the working set is back down (${(held1.workingSetBytes / MB).toFixed(1)} MB)`);
  const spun = await waitUntil('a throttled period', async () => {
    const st = await driver.stats(spin);
    return st && (st.throttledPeriods ?? 0) > 0 ? st : undefined;
  }, guestMs(4_000));
  t.ok(spun.throttledPeriods! > 0 && spun.throttledPeriods! <= (flatKeyed(cgFile(spin, 'cpu.stat')).get('nr_throttled') ?? 0),
    `throttled periods are cpu.stat's nr_throttled (${spun.throttledPeriods})`);
  const psi = readCgroupPressure(hold);
  t.ok(psi !== undefined && psi >= 0 && psi <= 100, `PSI some avg10 is read from the dyno's memory.pressure (${psi})`);
  t.match(cgFile(hold, 'memory.pressure'), /^some avg10=/, 'the file the warning reads is there on v2');
  for (const h of [hold, spin]) {
    await driver.stop(h, 2_000);
    await driver.destroy(h);
    assertGone(t, h);
  }
});

t.test('a fork bomb is capped by pids.max while the host stays responsive', async (t) => {
  const size = { ...DEFAULT_SIZES['standard-1x']!, pidsLimit: 32 };
  // A real bomb: every copy forks two more, forever; the dyno's own shell stays up to be stopped.
  const s = agentSpec('bomb', 'bomb() { bomb | bomb & }; bomb; echo bombed; exec sleep 1000', size);
  const h = await start(s);
  const events = async () => flatKeyed(cgFile(h, 'pids.events')).get('max') ?? 0;
  await waitUntil('the kernel to refuse the bomb a fork', async () => (await events()) > 0 || undefined, guestMs(4_000));
  let most = 0;
  const hostForks: number[] = [];
  for (let i = 0; i < 5; i++) {
    most = Math.max(most, Number(cgFile(h, 'pids.current')));
    const t0 = performance.now();
    t.equal(execFileSync('sh', ['-c', 'echo host-can-fork'], { encoding: 'utf8', timeout: guestMs(1_000) }).trim(), 'host-can-fork');
    hostForks.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 300));
  }
  t.ok(most <= 32, `the dyno never held more than its 32 pids (most seen: ${most})`);
  t.ok((await events()) > 0, `pids.events counts refused forks (max ${await events()})`);
  // Under TCG a bare fork+exec of sh takes ~20-50 ms; a host starved by the bomb would take seconds.
  t.ok(Math.max(...hostForks) < guestMs(200), `the host still forks at once (slowest ${Math.round(Math.max(...hostForks))} ms)`);
  const stopped = await driver.stop(h, 2_000);
  t.ok(stopped.exit, 'the bomb dyno stops');
  await driver.destroy(h);
  assertGone(t, h);
  t.same(cgroupChildren(cgroupParent), [], 'nothing left under the cgroup parent');
});
