// The extraction cgroup on fixture trees of both cgroup interfaces: v2 (current EC2 images;
// this machine runs v1) after Documentation/admin-guide/cgroup-v2.rst, with the files the
// kernel would have made in the new group made beforehand, and v1's per-controller layout.
// Real v1 cgroups: test/integration/agent/slugs/extract-cgroup.test.ts.
import t from 'tap';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXTRACT_CPU_SHARES, EXTRACT_CPU_WEIGHT, EXTRACT_IO_WEIGHT, ExtractCgroup } from '../../../../agent/slugs/extract-cgroup.js';
import { sharesToWeight } from '../../../../agent/runtime/lxc/lxc-config.js';
import { DEFAULT_SIZES } from '../../../../shared/sizes.js';

function tree(t: { teardown(fn: () => unknown): void }, files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'slipway-extract-cg-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(join(root, rel, '..'), { recursive: true });
    writeFileSync(join(root, rel), text);
  }
  return root;
}

const read = (root: string, rel: string): string => readFileSync(join(root, rel), 'utf8');

t.test('the weights sit below every default dyno size, in both interfaces', async (t) => {
  const smallest = Math.min(...Object.values(DEFAULT_SIZES).map((s) => s.cpuShares));
  t.ok(EXTRACT_CPU_SHARES < smallest, `${EXTRACT_CPU_SHARES} shares < ${smallest}`);
  t.equal(EXTRACT_CPU_WEIGHT, sharesToWeight(EXTRACT_CPU_SHARES), 'v2 weight = the dynos\' conversion of the v1 shares');
  t.ok(EXTRACT_CPU_WEIGHT < sharesToWeight(smallest));
  t.ok(EXTRACT_IO_WEIGHT < 100, 'below the default IO weight the dynos run with');
});

t.test('v2: enables cpu and io below the parent, sets the weights, moves the pid', async (t) => {
  const root = tree(t, {
    'cgroup.controllers': 'cpuset cpu io memory hugetlb pids\n',
    'cgroup.subtree_control': 'cpu io memory pids\n',
    'slipway/cgroup.controllers': 'cpu io memory pids\n',
    'slipway/cgroup.subtree_control': '\n',
    'slipway/slug-extract/cgroup.procs': '',
    'slipway/slug-extract/cpu.weight': '100\n',
    'slipway/slug-extract/io.weight': 'default 100\n',
  });
  const cg = new ExtractCgroup({ parent: '/slipway/', root, version: 2 });
  t.equal(cg.path, '/slipway/slug-extract');
  t.same(cg.dirs, [join(root, 'slipway/slug-extract')]);
  cg.join(4242);
  t.equal(read(root, 'slipway/slug-extract/cgroup.procs'), '4242');
  t.equal(read(root, 'slipway/slug-extract/cpu.weight'), String(EXTRACT_CPU_WEIGHT));
  t.equal(read(root, 'slipway/slug-extract/io.weight'), `default ${EXTRACT_IO_WEIGHT}`);
  t.equal(read(root, 'cgroup.subtree_control'), 'cpu io memory pids\n', 'the root, which enables both already, is not written');
  // Each controller is its own write; on this plain file the last one stays.
  t.equal(read(root, 'slipway/cgroup.subtree_control'), '+io');
  t.same(cg.weights.map((w) => [w.file.slice(root.length), w.applied]), [
    ['/slipway/slug-extract/cpu.weight', true],
    ['/slipway/slug-extract/io.weight', true],
    ['/slipway/slug-extract/io.bfq.weight', false],
  ], 'io.bfq.weight exists only with BFQ: reported as not applied');
});

t.test('v2 without the io controller: cpu is enabled alone and io.weight is reported absent', async (t) => {
  const root = tree(t, {
    'cgroup.controllers': 'cpu memory pids\n',
    'cgroup.subtree_control': 'cpu memory pids\n',
    'slipway/cgroup.controllers': 'cpu memory pids\n',
    'slipway/cgroup.subtree_control': 'memory\n',
    'slipway/slug-extract/cgroup.procs': '',
    'slipway/slug-extract/cpu.weight': '100\n',
  });
  const cg = new ExtractCgroup({ parent: '/slipway', root, version: 2 });
  cg.join(7);
  t.equal(read(root, 'slipway/cgroup.subtree_control'), '+cpu');
  t.equal(read(root, 'slipway/slug-extract/cpu.weight'), '5');
  t.same(cg.weights.filter((w) => !w.applied).map((w) => w.file.split('/').pop()), ['io.weight', 'io.bfq.weight']);
});

t.test('v1: cpu.shares in the cpu hierarchy, the IO weights in blkio, the pid in both', async (t) => {
  const root = tree(t, {
    'cpu/slipway/slug-extract/cgroup.procs': '',
    'cpu/slipway/slug-extract/cpu.shares': '1024\n',
    'blkio/slipway/slug-extract/cgroup.procs': '',
    'blkio/slipway/slug-extract/blkio.bfq.weight': '100\n',
    'memory/slipway/.keep': '',
  });
  const cg = new ExtractCgroup({ parent: '/slipway', root, version: 1 });
  t.same(cg.dirs, [join(root, 'cpu/slipway/slug-extract'), join(root, 'blkio/slipway/slug-extract')], 'only the hierarchies it sets a weight in');
  cg.join(99);
  t.equal(read(root, 'cpu/slipway/slug-extract/cpu.shares'), '128');
  t.equal(read(root, 'blkio/slipway/slug-extract/blkio.bfq.weight'), '10');
  t.equal(read(root, 'cpu/slipway/slug-extract/cgroup.procs'), '99');
  t.equal(read(root, 'blkio/slipway/slug-extract/cgroup.procs'), '99');
  t.same(cg.weights.filter((w) => !w.applied).map((w) => w.file.split('/').pop()), ['blkio.weight'], "CFQ's file, gone since 5.0");
});

t.test('v1 without a blkio hierarchy: cpu alone', async (t) => {
  const root = tree(t, { 'cpu/slipway/slug-extract/cgroup.procs': '', 'cpu/slipway/slug-extract/cpu.shares': '1024\n' });
  const cg = new ExtractCgroup({ parent: '/slipway', root, version: 1 });
  t.same(cg.dirs, [join(root, 'cpu/slipway/slug-extract')]);
  cg.join(5);
  t.equal(read(root, 'cpu/slipway/slug-extract/cpu.shares'), '128');
});

t.test('a directory that is not a cgroup (no cgroup.procs) fails the join with INTERNAL', async (t) => {
  const root = tree(t, { 'cpu/.keep': '' });
  const cg = new ExtractCgroup({ parent: '/slipway', root, version: 1 });
  t.throws(() => cg.join(5), { code: 'INTERNAL', message: /cannot put the slug extraction into cgroup \/slipway\/slug-extract/ });
});

t.test('release leaves a cgroup that is gone or still in use, and refuses a bad parent', async (t) => {
  const root = tree(t, { 'cpu/slipway/slug-extract/cgroup.procs': '1\n' });
  const cg = new ExtractCgroup({ parent: '/slipway', root, version: 1 });
  t.doesNotThrow(() => cg.release(), 'not empty (here: a file; in cgroupfs: EBUSY) is another extraction inside');
  rmSync(join(root, 'cpu/slipway/slug-extract'), { recursive: true });
  t.doesNotThrow(() => cg.release(), 'already gone');
  t.throws(() => new ExtractCgroup({ parent: '/slipway/../etc', root, version: 1 }), { code: 'INTERNAL' });
});
