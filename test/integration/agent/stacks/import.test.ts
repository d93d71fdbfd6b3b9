// `stack import` with real archives: the busybox stack built by its script, tarred by GNU tar,
// imported as root into a temp state dir; then archives an operator should not get through.
// Every rejection must leave the stacks dir exactly as it was.
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, closeSync, cpSync, existsSync, lstatSync, openSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { importStack } from '../../../../agent/stacks/import.js';
import { StackStore } from '../../../../agent/stacks/stacks.js';
import { stackCommand } from '../../../../agent/cli/stack.js';
import { mountOverlay, unmountOverlay } from '../../../../agent/runtime/overlay.js';
import { quietLogger } from '../../../helpers/host.js';
import { tarball } from '../slugs/fixtures/tarball.js';
import { busyboxTree, scratchDir, stacksDirEntries, tarDir } from './fixtures/rootfs.js';

const log = quietLogger();

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** Imports through the CLI's command function; returns the JSON lines it printed. */
async function cli(argv: string[]): Promise<Record<string, unknown>[]> {
  const lines: string[] = [];
  await stackCommand(argv, (l) => lines.push(l));
  return lines.join('').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

t.test('the busybox stack imports from a tar.gz: tree, mount points, marker, ls', async (t) => {
  const tree = busyboxTree(t);
  const work = scratchDir(t);
  const archive = tarDir(tree, join(work, 'busybox.tar.gz'));
  const state = join(work, 'state');

  const [printed, ...more] = await cli(['import', 'busybox', archive, '--state-dir', state]);
  t.same(more, [], 'one JSON line');
  const dir = join(state, 'stacks', 'busybox');
  t.match(printed, { name: 'busybox', path: dir, files: Number, bytes: Number });
  t.same(stacksDirEntries(join(state, 'stacks')), ['busybox'], 'no staging dir left beside it');

  // The tree: busybox and its applet links as built, root-owned, /bin/sh usable.
  t.equal(readlinkSync(join(dir, 'bin/sh')), 'busybox');
  const busybox = statSync(join(dir, 'bin/busybox'));
  t.equal(busybox.size, statSync(join(tree, 'bin/busybox')).size);
  t.equal(busybox.uid, 0);
  t.ok(busybox.mode & 0o111, 'busybox is executable');
  t.match(readFileSync(join(dir, 'etc/passwd'), 'utf8'), /^dyno:x:64000:64000:/m);
  for (const m of ['proc', 'sys', 'dev', 'app']) t.ok(lstatSync(join(dir, m)).isDirectory(), `/${m} exists`);
  t.equal(lstatSync(join(dir, 'tmp')).mode & 0o7777, 0o1777, '/tmp is 1777');
  t.equal(statSync(dir).mode & 0o777, 0o755);

  // The marker replaces the build script's own and describes this archive.
  const marker = JSON.parse(readFileSync(join(dir, '.slipway-stack'), 'utf8')) as Record<string, unknown>;
  t.match(marker, { name: 'busybox', sha256: sha256File(archive), files: printed!.files, bytes: printed!.bytes });
  t.ok(Math.abs(Date.parse(String(marker.importedAt)) - Date.now()) < 60_000, 'importedAt is now');
  t.equal(printed!.bytes, statSync(join(tree, 'bin/busybox')).size + statSync(join(tree, 'etc/passwd')).size + statSync(join(tree, 'etc/group')).size,
    'bytes are the regular files of the archive (busybox, passwd, group)');
  t.equal(printed!.files, 3);

  t.same(new StackStore(join(state, 'stacks')).resolve('busybox'), { dir, shell: '/bin/sh' }, 'dynos can use it');
  t.same(await cli(['ls', '--state-dir', state]), [{
    name: 'busybox', path: dir, bytes: printed!.bytes, files: 3, importedAt: marker.importedAt, sha256: marker.sha256, shell: '/bin/sh',
  }]);
});

t.test('a plain tar with device nodes and FIFOs: they are skipped, owners and modes are kept', async (t) => {
  const tree = busyboxTree(t);
  const work = scratchDir(t);
  const long = 'l'.repeat(120); // beyond ustar's 100-byte name: an extension header precedes the entry
  execFileSync('mknod', [join(tree, 'dev/null'), 'c', '1', '3']);
  execFileSync('mknod', [join(tree, 'dev/sda'), 'b', '8', '0']);
  execFileSync('mkfifo', [join(tree, 'dev/initctl'), join(tree, `dev/${long}-fifo`)]);
  writeFileSync(join(tree, `dev/${long}-zfile`), 'after the long fifo\n');
  writeFileSync(join(tree, 'dev/zz-after'), 'after the devices\n');
  writeFileSync(join(tree, 'bin/owned'), 'x');
  chownSync(join(tree, 'bin/owned'), 1234, 2345);
  chmodSync(join(tree, 'bin/owned'), 0o4750);

  for (const format of ['gnu', 'posix'] as const) {
    const state = join(work, `state-${format}`);
    const archive = tarDir(tree, join(work, `${format}.tar`), { gzip: false, format });
    const s = await importStack({ name: 'busybox', archive, stacksDir: join(state, 'stacks'), log });
    t.equal(s.skipped, 4, `${format}: two devices and two FIFOs skipped`);
    for (const n of ['dev/null', 'dev/sda', 'dev/initctl', `dev/${long}-fifo`]) t.notOk(existsSync(join(s.path, n)), `${format}: ${n} was not created`);
    t.equal(readFileSync(join(s.path, `dev/${long}-zfile`), 'utf8'), 'after the long fifo\n', `${format}: the entry after a skipped long-named one is intact`);
    t.equal(readFileSync(join(s.path, 'dev/zz-after'), 'utf8'), 'after the devices\n');
    const owned = lstatSync(join(s.path, 'bin/owned'));
    t.same([owned.uid, owned.gid, owned.mode & 0o7777], [1234, 2345, 0o4750], `${format}: numeric owners and the setuid bit are kept`);
  }
});

/** Asserts an import fails with `code` and leaves the stacks dir as it was. */
async function rejects(t: Test, archive: string, code: string, message: RegExp): Promise<string> {
  const state = scratchDir(t, 'slipway-stack-state-');
  const stacksDir = join(state, 'stacks');
  await t.rejects(importStack({ name: 'bad', archive, stacksDir, log }), { code, message });
  t.same(stacksDirEntries(stacksDir), [], 'nothing is left in the stacks dir');
  return stacksDir;
}

t.test('rejected archives leave nothing behind', async (t) => {
  const tree = busyboxTree(t);
  const work = scratchDir(t);

  t.test('no bin/sh', async (t) => {
    const spoilt = join(work, 'no-sh');
    cpSync(tree, spoilt, { recursive: true, verbatimSymlinks: true });
    rmSync(join(spoilt, 'bin/sh'));
    await rejects(t, tarDir(spoilt, join(work, 'no-sh.tar.gz')), 'STACK_INVALID', /no usable bin\/sh: \/bin\/sh does not exist/);
  });

  t.test('bin/sh -> /bin/sh: the host has one, the stack does not', async (t) => {
    const spoilt = join(work, 'host-sh');
    cpSync(tree, spoilt, { recursive: true, verbatimSymlinks: true });
    rmSync(join(spoilt, 'bin/sh'));
    symlinkSync('/bin/sh', join(spoilt, 'bin/sh'));
    t.ok(existsSync(join(spoilt, 'bin/sh')), 'followed on the host, the link finds the host shell');
    await rejects(t, tarDir(spoilt, join(work, 'host-sh.tar.gz')), 'STACK_INVALID', /no usable bin\/sh: .*too many levels of symbolic links/);
  });

  t.test('bin/sh -> ../../../bin/sh climbs out of the rootfs', async (t) => {
    const spoilt = join(work, 'climb-sh');
    cpSync(tree, spoilt, { recursive: true, verbatimSymlinks: true });
    rmSync(join(spoilt, 'bin/sh'));
    symlinkSync('../../../bin/sh', join(spoilt, 'bin/sh'));
    await rejects(t, tarDir(spoilt, join(work, 'climb-sh.tar.gz')), 'STACK_INVALID', /leads outside the root filesystem/);
  });

  t.test('a corrupt gzip', async (t) => {
    const good = readFileSync(tarDir(tree, join(work, 'good.tar.gz')));
    writeFileSync(join(work, 'truncated.tar.gz'), good.subarray(0, Math.floor(good.length / 2)));
    await rejects(t, join(work, 'truncated.tar.gz'), 'STACK_INVALID', /not a readable gzip/);
    const flipped = Buffer.from(good);
    for (let i = 100; i < 400; i++) flipped[i] = flipped[i]! ^ 0xff;
    writeFileSync(join(work, 'flipped.tar.gz'), flipped);
    // Garbage may come out of the inflater before it notices: then the tar layers refuse it.
    await rejects(t, join(work, 'flipped.tar.gz'), 'STACK_INVALID', /not a readable gzip|not a usable tar|not a readable tar/);
  });

  t.test('not a tar at all', async (t) => {
    writeFileSync(join(work, 'text.tar'), 'this is not an archive\n'.repeat(100));
    await rejects(t, join(work, 'text.tar'), 'STACK_INVALID', /not a usable tar: /);
  });

  t.test('an entry ../escape', async (t) => {
    const archive = join(work, 'escape.tar.gz');
    writeFileSync(archive, gzipSync(tarball([
      { path: './', type: 'Directory', uid: 0, gid: 0 },
      { path: './bin/', type: 'Directory', uid: 0, gid: 0 },
      { path: './bin/sh', body: '#!fake\n', mode: 0o755, uid: 0, gid: 0 },
      { path: '../escape', body: 'outside\n', uid: 0, gid: 0 },
    ])));
    const stacksDir = await rejects(t, archive, 'STACK_INVALID', /entry "\.\.\/escape" contains a '\.\.' segment/);
    t.notOk(existsSync(join(stacksDir, 'escape')), 'nothing was written beside the staging dir');
  });

  t.test('an entry written through a symlink that points out', async (t) => {
    const outside = scratchDir(t, 'slipway-outside-');
    const archive = join(work, 'through.tar');
    writeFileSync(archive, tarball([
      { path: './bin/', type: 'Directory', uid: 0, gid: 0 },
      { path: './bin/sh', body: '#!fake\n', mode: 0o755, uid: 0, gid: 0 },
      { path: './etc', type: 'SymbolicLink', linkpath: outside, uid: 0, gid: 0 },
      { path: './etc/evil', body: 'pwned\n', uid: 0, gid: 0 },
    ]));
    await rejects(t, archive, 'STACK_INVALID', /written through or over the symlink "etc"/);
    t.notOk(existsSync(join(outside, 'evil')), 'nothing was written through the link');
  });

  t.test('a hard link to a host file', async (t) => {
    const archive = join(work, 'hardlink.tar');
    writeFileSync(archive, tarball([
      { path: './bin/', type: 'Directory', uid: 0, gid: 0 },
      { path: './bin/sh', body: '#!fake\n', mode: 0o755, uid: 0, gid: 0 },
      { path: './shadow', type: 'Link', linkpath: '/etc/shadow', uid: 0, gid: 0 },
    ]));
    await rejects(t, archive, 'STACK_INVALID', /hard link "\.\/shadow" -> "\/etc\/shadow" is absolute/);
  });

  t.test('a mount point that is a symlink', async (t) => {
    const spoilt = join(work, 'proc-link');
    cpSync(tree, spoilt, { recursive: true, verbatimSymlinks: true });
    rmSync(join(spoilt, 'proc'), { recursive: true });
    symlinkSync('/proc', join(spoilt, 'proc'));
    await rejects(t, tarDir(spoilt, join(work, 'proc-link.tar.gz')), 'STACK_INVALID', /\/proc as a symlink/);
  });

  t.test('an archive that never ends runs into the time bound', async (t) => {
    const fifo = join(work, 'stalled.fifo');
    execFileSync('mkfifo', [fifo]);
    // Opened read-write, the FIFO has a writer that never writes: reads wait, nothing fails.
    const writer = openSync(fifo, 'r+');
    t.teardown(() => closeSync(writer));
    const state = scratchDir(t, 'slipway-stack-state-');
    await t.rejects(importStack({ name: 'stalled', archive: fifo, stacksDir: join(state, 'stacks'), log, timeoutMs: 300 }), { code: 'RUNTIME_TIMEOUT' });
    t.same(stacksDirEntries(join(state, 'stacks')), [], 'nothing is left in the stacks dir');

    // The CLI aborts on SIGINT/SIGTERM the same way, long before the time bound.
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 100);
    await t.rejects(importStack({ name: 'stalled', archive: fifo, stacksDir: join(state, 'stacks'), log, signal: abort.signal }), { code: 'INTERNAL', message: /interrupted/ });
    t.same(stacksDirEntries(join(state, 'stacks')), [], 'nothing is left after an interruption either');
  });
});

t.test('an installed stack is replaced only with --force, and never while a dyno overlay uses it', async (t) => {
  const tree = busyboxTree(t);
  const work = scratchDir(t);
  const state = join(work, 'state');
  const stacksDir = join(state, 'stacks');
  const first = tarDir(tree, join(work, 'first.tar.gz'));
  await cli(['import', 'busybox', first, '--state-dir', state]);
  const markerPath = join(stacksDir, 'busybox', '.slipway-stack');
  const before = readFileSync(markerPath, 'utf8');

  writeFileSync(join(tree, 'etc/motd'), 'second build\n');
  const second = tarDir(tree, join(work, 'second.tar.gz'));
  await t.rejects(cli(['import', 'busybox', second, '--state-dir', state]), { code: 'STACK_EXISTS', message: /already installed.*--force/ });
  t.equal(readFileSync(markerPath, 'utf8'), before, 'without --force the installed stack is untouched');
  t.same(stacksDirEntries(stacksDir), ['busybox']);

  // A dyno's root filesystem: the stack as a lower layer of a real overlay.
  const rootfs = join(work, 'dyno/rootfs');
  t.teardown(() => unmountOverlay(rootfs));
  await mountOverlay({ lower: [join(stacksDir, 'busybox')], upper: join(work, 'dyno/upper'), work: join(work, 'dyno/work'), target: rootfs });
  t.ok(existsSync(join(rootfs, 'bin/busybox')), 'the overlay shows the stack');
  await t.rejects(cli(['import', 'busybox', second, '--state-dir', state, '--force']), { code: 'STACK_IN_USE', message: /in use by 1 dyno overlay mount\(s\) \(.*dyno\/rootfs\)/ });
  t.equal(readFileSync(markerPath, 'utf8'), before, 'the mounted stack is untouched');
  t.same(stacksDirEntries(stacksDir), ['busybox'], 'no staging dir left');
  await unmountOverlay(rootfs);

  const [printed] = await cli(['import', 'busybox', second, '--state-dir', state, '--force']);
  t.match(printed, { name: 'busybox', path: join(stacksDir, 'busybox') });
  t.equal(readFileSync(join(stacksDir, 'busybox/etc/motd'), 'utf8'), 'second build\n', 'the new tree is in place');
  t.equal(JSON.parse(readFileSync(markerPath, 'utf8')).sha256, sha256File(second));
  t.same(stacksDirEntries(stacksDir), ['busybox'], 'the replaced tree is gone');
});

t.test('bad command lines are CONFIG_INVALID', async (t) => {
  const state = scratchDir(t);
  await t.rejects(cli(['import', 'busybox', '--state-dir', state]), { code: 'CONFIG_INVALID', message: /needs NAME and ARCHIVE/ });
  await t.rejects(cli(['import', 'Bad/Name', '/dev/null', '--state-dir', state]), { code: 'CONFIG_INVALID', message: /invalid stack name/ });
  await t.rejects(cli(['frobnicate', '--state-dir', state]), { code: 'CONFIG_INVALID', message: /unknown stack command/ });
  await t.rejects(cli(['import', 'x', join(state, 'missing.tar'), '--state-dir', state]), { code: 'STACK_INVALID', message: /cannot read the stack archive/ });
  t.same(stacksDirEntries(join(state, 'stacks')), []);
});

