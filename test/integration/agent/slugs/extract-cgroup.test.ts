// GNU tar writes a slug from inside `<cgroupParent>/slug-extract` with the weights of
// extract-cgroup.ts, on this machine's real cgroup v1 (the v2 files: the unit test). The
// user's checks: /proc/<pid>/cgroup of the tar process while it extracts, the cgroup's own
// files, and no cgroup left after success, refusal or a failed join.
import t from 'tap';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { extractSlug, type ExtractResult } from '../../../../agent/slugs/extract.js';
import { EXTRACT_CGROUP_NAME, EXTRACT_CPU_SHARES, EXTRACT_IO_WEIGHT } from '../../../../agent/slugs/extract-cgroup.js';
import { cgroupChildren, eventually, quietLogger, removeCgroupParent, uniqueName } from '../../../helpers/host.js';
import { tarball, type RawEntry } from './fixtures/tarball.js';
import { OWNER } from './fixtures/store.js';

const parent = `/${uniqueName('slipway-xtest-')}`;
const leaf = `${parent}/${EXTRACT_CGROUP_NAME}`;
const CPU = `/sys/fs/cgroup/cpu${leaf}`;
const BLKIO = `/sys/fs/cgroup/blkio${leaf}`;

t.teardown(() => {
  for (const dir of [CPU, BLKIO]) {
    try { rmdirSync(dir); } catch { /* gone, as it should be */ }
  }
  removeCgroupParent(parent);
});

function staging(t: { teardown(fn: () => unknown): void }): string {
  const root = mkdtempSync(path.join(tmpdir(), 'slipway-xcg-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const dir = path.join(root, 'staging');
  mkdirSync(dir);
  chownSync(dir, OWNER.uid, OWNER.gid);
  return dir;
}

/** A slug in two halves of gzip: each half is a whole gzip member, so the first is
 * extracted while the test holds the second back (gunzip reads concatenated members). */
function halves(): { first: Buffer; second: Buffer } {
  const head: RawEntry[] = [{ path: './app/', type: 'Directory' }, { path: './app/first', body: randomBytes(64 * 1024) }];
  const tail: RawEntry[] = [{ path: './app/second', body: 'done\n' }];
  const a = tarball(head);
  return { first: gzipSync(a.subarray(0, a.length - 1024)), second: gzipSync(tarball(tail)) };
}

/** Processes whose working directory is `dir`: the extractor's tar runs in the staging dir. */
function processesIn(dir: string): number[] {
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      return readlinkSync(`/proc/${p}/cwd`) === dir;
    } catch {
      return false;
    }
  }).map(Number);
}

function cgroupLine(pid: number, controller: string): string | undefined {
  return readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.split(':')[1]?.split(',').includes(controller))?.split(':')[2];
}

const procs = (dir: string): number[] => readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);

t.test('tar extracts from inside the extraction cgroup, with its weights; the cgroup goes with it', async (t) => {
  const dir = staging(t);
  const source = new PassThrough();
  const { first, second } = halves();
  const done = extractSlug({ source, stagingDir: dir, owner: OWNER, expectedSha256: undefined, log: quietLogger(), cgroup: { parent } });
  source.write(first);
  await eventually('the first file on disk', () => existsSync(path.join(dir, 'app/first')) || undefined, 20_000, 20);
  const [pid, ...more] = processesIn(dir);
  t.same(more, [], 'one process extracts');
  if (pid === undefined) throw new Error('no tar process in the staging dir');
  t.match(readFileSync(`/proc/${pid}/status`, 'utf8'), new RegExp(`^Uid:\\s+${OWNER.uid}\\s`, 'm'), 'as the dyno user');
  t.equal(readFileSync(`/proc/${pid}/comm`, 'utf8').trim(), 'tar');
  t.equal(cgroupLine(pid, 'cpu'), leaf, '/proc/<pid>/cgroup: the cpu hierarchy');
  t.equal(cgroupLine(pid, 'blkio'), leaf, '/proc/<pid>/cgroup: the blkio hierarchy');
  t.not(cgroupLine(pid, 'memory'), leaf, 'no other hierarchy is touched');
  t.same(procs(CPU), [pid]);
  t.equal(readFileSync(path.join(CPU, 'cpu.shares'), 'utf8').trim(), String(EXTRACT_CPU_SHARES));
  // The disk's scheduler here is mq-deadline, which ignores it: set anyway (README).
  t.equal(readFileSync(path.join(BLKIO, 'blkio.bfq.weight'), 'utf8').trim(), String(EXTRACT_IO_WEIGHT));
  source.end(second);
  const result: ExtractResult = await done;
  t.equal(result.files, 2);
  t.equal(readFileSync(path.join(dir, 'app/second'), 'utf8'), 'done\n');
  t.notOk(existsSync(CPU), 'cpu cgroup removed');
  t.notOk(existsSync(BLKIO), 'blkio cgroup removed');
  t.same(cgroupChildren(parent), [], 'nothing left under the parent');
});

t.test('tar is in the cgroup before the first byte of the slug reaches it', async (t) => {
  // A tar that first reads one block, then says where it is, then extracts everything: if
  // the join came after the extractor started feeding, the block would be read outside.
  const dir = staging(t);
  const scratch = path.join(path.dirname(dir), 'probe');
  mkdirSync(scratch);
  chownSync(scratch, OWNER.uid, OWNER.gid);
  const wrapper = path.join(path.dirname(dir), 'tar-probe');
  writeFileSync(wrapper, `#!/bin/sh\nhead -c 512 > ${scratch}/block\ncat /proc/self/cgroup > ${scratch}/cgroup\ncat ${scratch}/block - | tar "$@"\n`);
  chmodSync(wrapper, 0o755);
  chmodSync(path.dirname(dir), 0o755);
  const { first, second } = halves();
  const result = await extractSlug({ source: Readable.from([first, second]), stagingDir: dir, owner: OWNER, expectedSha256: undefined, log: quietLogger(), cgroup: { parent }, tarPath: wrapper });
  t.equal(result.files, 2);
  const lines = readFileSync(path.join(scratch, 'cgroup'), 'utf8').split('\n');
  t.ok(lines.some((l) => /^\d+:cpu:/.test(l) && l.endsWith(`:${leaf}`)), `in ${leaf} when the first block arrived: ${lines.join(' | ')}`);
  t.same(cgroupChildren(parent), []);
});

t.test('a refused slug and concurrent extractions leave no cgroup behind; the last one out removes it', async (t) => {
  const a = staging(t);
  const b = staging(t);
  const srcA = new PassThrough();
  const srcB = new PassThrough();
  const { first, second } = halves();
  const doneA = extractSlug({ source: srcA, stagingDir: a, owner: OWNER, expectedSha256: undefined, log: quietLogger(), cgroup: { parent } });
  const doneB = extractSlug({ source: srcB, stagingDir: b, owner: OWNER, expectedSha256: undefined, log: quietLogger(), cgroup: { parent } });
  srcA.write(first);
  srcB.write(first);
  await eventually('both extracting', () => (existsSync(path.join(a, 'app/first')) && existsSync(path.join(b, 'app/first'))) || undefined, 20_000, 20);
  t.same(procs(CPU).sort(), [...processesIn(a), ...processesIn(b)].sort(), 'both tars share the one cgroup');
  // A refused entry: the slug fails whole, its tar is killed; the other is still inside.
  srcA.end(gzipSync(tarball([{ path: '../escape', body: 'x' }])));
  await t.rejects(doneA, { code: 'SLUG_UNSAFE_PATH' });
  t.ok(existsSync(CPU), 'still there: the other extraction is inside');
  t.same(procs(CPU), processesIn(b));
  srcB.end(second);
  await doneB;
  t.notOk(existsSync(CPU));
  t.same(cgroupChildren(parent), []);
});

t.test('a cgroup that cannot be joined fails the extraction with INTERNAL, before anything is written', async (t) => {
  const dir = staging(t);
  const fake = mkdtempSync(path.join(tmpdir(), 'slipway-notcg-'));
  t.teardown(() => rmSync(fake, { recursive: true, force: true }));
  mkdirSync(path.join(fake, 'cpu'));
  const { first, second } = halves();
  await t.rejects(extractSlug({ source: Readable.from([first, second]), stagingDir: dir, owner: OWNER, expectedSha256: undefined, log: quietLogger(), cgroup: { parent, root: fake, version: 1 } }),
    { code: 'INTERNAL', message: /cannot put the slug extraction into cgroup/ });
  t.same(readdirSync(dir), [], 'tar was stopped before it was fed');
  t.same(processesIn(dir), []);
});
