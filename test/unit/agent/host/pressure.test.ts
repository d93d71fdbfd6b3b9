// The host pressure's arithmetic (judge, the limits parser, the probe backoff) and its
// bookkeeping on fake time: a write failure refuses new work until a probe write succeeds
// after it, a writer's ongoing streak counts once per streak, the sample is cached for
// SAMPLE_TTL_MS, and a change of verdict is told once. The descriptors are read from a fake
// /proc/self (a dir with fd/ entries and a limits file); the probe writes into a temp dir.
import t, { type Test } from 'tap';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  diskFailureKind, errnoCodeOf, HostPressure, judge, parseNofileSoft, probeDelay,
  PROBE_INTERVAL_MS, PROBE_RETRY_INITIAL_MS, PROBE_RETRY_MAX_MS, SAMPLE_TTL_MS, TICK_MS,
  type OngoingFailure, type PressureSample, type Verdict,
} from '../../../../agent/host/pressure.js';
import { FakeClock } from '../../../helpers/fake-clock.js';
import { quietLogger } from '../../../helpers/host.js';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 524288               files
Max locked memory         8388608              8388608              bytes
`;
const ok: PressureSample = { freeBytes: 10 * 2 ** 30, openFds: 100, fdLimit: 1024, fdExhausted: false };
const limits = { floorBytes: 256 * 2 ** 20, fdHeadroom: 64 };

t.test('the soft RLIMIT_NOFILE from /proc/self/limits', async (t) => {
  t.equal(parseNofileSoft(LIMITS), 1024);
  t.equal(parseNofileSoft(LIMITS.replace('1024  ', 'unlimited')), undefined, 'unlimited: no limit to judge against');
  t.equal(parseNofileSoft('garbage'), undefined);
});

t.test('which errno codes are the disk\'s', async (t) => {
  t.same(['ENOSPC', 'EDQUOT', 'EIO', 'EROFS', 'EACCES', 'EMFILE', undefined].map(diskFailureKind), ['full', 'full', 'failing', 'failing', undefined, undefined, undefined]);
  t.equal(errnoCodeOf('ENOSPC: no space left on device, write'), 'ENOSPC');
  t.equal(errnoCodeOf('EIO: i/o error, fsync'), 'EIO');
  t.equal(errnoCodeOf('something else'), undefined);
  t.equal(errnoCodeOf(null), undefined);
});

t.test('judge: the floor, the headroom, write failures, and which one wins', async (t) => {
  t.equal(judge(ok, undefined, limits), undefined, 'room everywhere');
  t.equal(judge({ ...ok, freeBytes: limits.floorBytes }, undefined, limits), undefined, 'exactly the floor free is enough');
  t.equal(judge({ ...ok, freeBytes: limits.floorBytes - 1 }, undefined, limits)?.code, 'STATE_DIR_FULL', 'a byte under the floor');
  t.match(judge({ ...ok, freeBytes: 100 * 2 ** 20 }, undefined, limits)?.message, /100 MB free, below its floor of 256 MB/);
  t.equal(judge({ ...ok, openFds: 1024 - 64 }, undefined, limits), undefined, 'exactly the headroom left');
  t.equal(judge({ ...ok, openFds: 1024 - 63 }, undefined, limits)?.code, 'AGENT_FD_LIMIT');
  t.match(judge({ ...ok, openFds: 1000 }, undefined, limits)?.message, /1000 of 1024 file descriptors open, fewer than 64 left/);
  t.equal(judge({ ...ok, openFds: 5000 }, undefined, limits)?.code, 'AGENT_FD_LIMIT', 'a limit lowered below what is open');
  t.equal(judge({ ...ok, openFds: undefined, fdLimit: undefined, fdExhausted: true }, undefined, limits)?.code, 'AGENT_FD_LIMIT', 'EMFILE while counting');
  t.equal(judge({ ...ok, fdLimit: undefined }, undefined, limits), undefined, 'no soft limit: nothing to run out of');
  const at = 0;
  t.equal(judge(ok, { where: 'journal', code: 'ENOSPC', message: 'x', at }, limits)?.code, 'STATE_DIR_FULL', 'ENOSPC with statfs showing room (a quota, reserved blocks)');
  t.equal(judge(ok, { where: 'probe', code: 'EDQUOT', message: 'x', at }, limits)?.code, 'STATE_DIR_FULL');
  t.equal(judge(ok, { where: 'dyno-record', code: 'EIO', message: 'x', at }, limits)?.code, 'STATE_DIR_FAILING');
  t.equal(judge(ok, { where: 'probe', code: 'EROFS', message: 'x', at }, limits)?.code, 'STATE_DIR_FAILING');
  t.equal(judge(ok, { where: 'probe', code: 'EACCES', message: 'x', at }, limits), undefined, 'not the disk');
  const all: PressureSample = { freeBytes: 0, openFds: 1024, fdLimit: 1024, fdExhausted: false };
  t.equal(judge(all, { where: 'probe', code: 'EIO', message: 'x', at }, limits)?.code, 'STATE_DIR_FAILING', 'failing outranks full');
  t.equal(judge(all, undefined, limits)?.code, 'STATE_DIR_FULL', 'full outranks descriptors');
});

t.test('the probe backs off x2 from 1 s to 10 s after failures, every 10 s while well', async (t) => {
  t.same([0, 1, 2, 3, 4, 5, 9].map(probeDelay), [PROBE_INTERVAL_MS, 1000, 2000, 4000, 8000, PROBE_RETRY_MAX_MS, PROBE_RETRY_MAX_MS]);
  t.equal(probeDelay(1), PROBE_RETRY_INITIAL_MS);
});

function setup(t: Test, over: { sources?: (() => OngoingFailure | undefined)[]; probeDir?: string } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-pressure-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const proc = join(dir, 'proc');
  mkdirSync(join(proc, 'fd'), { recursive: true });
  const setFds = (n: number, limit: number) => {
    rmSync(join(proc, 'fd'), { recursive: true, force: true });
    mkdirSync(join(proc, 'fd'));
    // The listing's own descriptor is counted by the module: n + 1 entries are n open.
    for (let i = 0; i <= n; i++) writeFileSync(join(proc, 'fd', String(i)), '');
    writeFileSync(join(proc, 'limits'), LIMITS.replace('1024  ', `${limit}${' '.repeat(Math.max(0, 6 - String(limit).length))}`));
  };
  setFds(10, 1024);
  const clock = new FakeClock();
  const changes: (Verdict | undefined)[] = [];
  const stateDir = join(dir, 'state');
  mkdirSync(join(stateDir, 'agent'), { recursive: true });
  const pressure = new HostPressure({
    stateDir, probeFile: join(over.probeDir ?? join(stateDir, 'agent'), 'write-probe'), floorBytes: 0, fdHeadroom: 64,
    log: quietLogger(), clock, procSelf: proc, onChange: (v) => changes.push(v), ...(over.sources ? { sources: over.sources } : {}),
  });
  t.teardown(() => pressure.stop());
  return { pressure, clock, changes, setFds, dir };
}

/** Lets the probe's real file I/O finish (it runs on fake timers, real fs). */
async function settle(until: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !until(); i++) await new Promise((r) => setTimeout(r, 5));
}

t.test('a disk write failure refuses new work until a probe write succeeds after it', async (t) => {
  const { pressure, clock, changes } = setup(t);
  t.equal(pressure.refusal(), undefined);
  pressure.noteWriteFailure('dyno-record', Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }));
  t.equal(pressure.refusal()?.code, 'STATE_DIR_FAILING', 'refused at once');
  t.equal(pressure.status().lastWriteFailure?.where, 'dyno-record');
  t.equal(pressure.accepting, false);
  pressure.noteWriteFailure('dyno-record', Object.assign(new Error('EACCES'), { code: 'EACCES' }));
  t.equal(pressure.refusal()?.code, 'STATE_DIR_FAILING', 'a failure that is not the disk\'s changes nothing');
  clock.tick(PROBE_RETRY_INITIAL_MS);
  await settle(() => pressure.status().lastWriteFailure === null);
  t.equal(pressure.refusal(), undefined, 'the probe wrote: accepted again, with no restart');
  t.same(changes.map((c) => c?.code ?? null), ['STATE_DIR_FAILING', null], 'each change told once');
});

t.test('a probe that cannot write keeps the refusal and retries with backoff', async (t) => {
  // The probe's dir does not exist: open fails with ENOENT, which is not the disk's; the
  // failure the writer reported stands until a probe succeeds.
  const { pressure, clock } = setup(t, { probeDir: join(tmpdir(), 'slipway-no-such-dir', 'x') });
  pressure.noteWriteFailure('journal', Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }));
  t.equal(pressure.refusal()?.code, 'STATE_DIR_FULL');
  // Not started: no tick, so every timer is a probe's.
  const probes = () => clock.delays;
  clock.tick(PROBE_RETRY_INITIAL_MS);
  await settle(() => probes().length >= 2);
  clock.tick(PROBE_RETRY_INITIAL_MS);
  await settle(() => probes().length >= 3);
  clock.tick(SAMPLE_TTL_MS);
  t.equal(pressure.refusal()?.code, 'STATE_DIR_FULL', 'still refused: nothing has been written since');
  t.same(probes(), [PROBE_RETRY_INITIAL_MS, PROBE_RETRY_INITIAL_MS, 2 * PROBE_RETRY_INITIAL_MS], 'each failed probe waits longer for the next');
});

t.test('descriptors: re-read each sample, cached for SAMPLE_TTL_MS, and the tick notices the end', async (t) => {
  const { pressure, clock, setFds, changes } = setup(t);
  pressure.start();
  await settle(() => clock.pending >= 2);
  t.equal(pressure.refusal(), undefined);
  setFds(1000, 1024);
  t.equal(pressure.refusal(), undefined, 'a sample younger than the TTL is reused');
  clock.stepWall(-3_600_000); // an NTP step back: the sample's age is monotonic
  clock.tick(SAMPLE_TTL_MS);
  t.equal(pressure.refusal()?.code, 'AGENT_FD_LIMIT', 're-read after the TTL');
  setFds(1000, 4096); // the limit raised with prlimit --pid
  clock.tick(TICK_MS);
  t.equal(changes.at(-1), undefined, 'the background tick saw the new limit and told it');
  t.equal(pressure.status().sample.fdLimit, 4096);
});

t.test("another writer's failing streak counts from when it is first seen, until a probe succeeds", async (t) => {
  let journal: OngoingFailure | undefined;
  const { pressure, clock } = setup(t, { sources: [() => journal] });
  journal = { where: 'journal', code: 'EIO', message: 'EIO: i/o error, write', since: '2026-01-01T00:00:00.000Z' };
  t.equal(pressure.refusal()?.code, 'STATE_DIR_FAILING', 'seen at the next sample');
  clock.tick(PROBE_RETRY_INITIAL_MS);
  await settle(() => pressure.status().lastWriteFailure === null);
  clock.tick(SAMPLE_TTL_MS);
  t.equal(pressure.refusal(), undefined, 'the same streak no longer counts once the disk took a write');
  journal = { ...journal, since: '2026-01-01T00:05:00.000Z' };
  clock.tick(SAMPLE_TTL_MS);
  t.equal(pressure.refusal()?.code, 'STATE_DIR_FAILING', 'a new streak counts again');
  journal = undefined;
  clock.tick(PROBE_RETRY_INITIAL_MS);
  await settle(() => pressure.status().lastWriteFailure === null);
  clock.tick(SAMPLE_TTL_MS);
  t.equal(pressure.refusal(), undefined);
});
