// StackStore.resolve and the lookups under it, on real trees: symlinks are followed the way
// the dyno sees them (absolute targets are the stack's own root), and which overlays use a
// stack is read from a mount table.
import t from 'tap';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StackStore } from '../../../../agent/stacks/stacks.js';
import { lookupInRootfs, notExecutable } from '../../../../agent/stacks/rootfs.js';
import { mountedStacks } from '../../../../agent/stacks/in-use.js';
import { scratchDir } from './fixtures/rootfs.js';

function exe(path: string): void {
  writeFileSync(path, '#!fake\n');
  chmodSync(path, 0o755);
}

t.test('resolve: merged /usr with bash, Alpine-style absolute links, and stacks without a shell', async (t) => {
  const stacks = scratchDir(t);
  const store = new StackStore(stacks);

  // Debian bookworm: bin -> usr/bin, usr/bin/sh -> dash.
  const debian = join(stacks, 'debian');
  mkdirSync(join(debian, 'usr/bin'), { recursive: true });
  symlinkSync('usr/bin', join(debian, 'bin'));
  exe(join(debian, 'usr/bin/dash'));
  exe(join(debian, 'usr/bin/bash'));
  symlinkSync('dash', join(debian, 'usr/bin/sh'));
  t.same(store.resolve('debian'), { dir: debian, shell: '/bin/bash' });

  // Alpine: bin/sh -> /bin/busybox, absolute, meaning the stack's own /bin/busybox.
  const alpine = join(stacks, 'alpine');
  mkdirSync(join(alpine, 'bin'), { recursive: true });
  exe(join(alpine, 'bin/busybox'));
  symlinkSync('/bin/busybox', join(alpine, 'bin/sh'));
  t.same(store.resolve('alpine'), { dir: alpine, shell: '/bin/sh' }, 'no bash: /bin/sh');

  // bin/sh -> /bin/sh: the host has one, the stack has a loop.
  const loop = join(stacks, 'loop');
  mkdirSync(join(loop, 'bin'), { recursive: true });
  symlinkSync('/bin/sh', join(loop, 'bin/sh'));
  t.throws(() => store.resolve('loop'), { code: 'STACK_NOT_FOUND', message: /no usable \/bin\/sh: .*too many levels of symbolic links/ });

  // bash that is not executable does not count; sh that is a directory is no shell.
  chmodSync(join(debian, 'usr/bin/bash'), 0o644);
  t.equal(store.resolve('debian').shell, '/bin/sh');
  const dirsh = join(stacks, 'dirsh');
  mkdirSync(join(dirsh, 'bin/sh'), { recursive: true });
  t.throws(() => store.resolve('dirsh'), { code: 'STACK_NOT_FOUND', message: /\/bin\/sh is not a regular file/ });

  t.throws(() => store.resolve('absent'), { code: 'STACK_NOT_FOUND', message: /stack absent is not installed under/ });
  t.throws(() => store.resolve('../etc'), { code: 'STACK_NOT_FOUND', message: /invalid stack name/ });
});

t.test('lookupInRootfs: .. stays inside or is refused, components must be directories', async (t) => {
  const root = scratchDir(t);
  mkdirSync(join(root, 'usr/lib'), { recursive: true });
  exe(join(root, 'usr/lib/tool'));
  symlinkSync('../lib/tool', join(root, 'usr/lib/rel'));
  symlinkSync('../../../../usr/lib/tool', join(root, 'usr/lib/climb'));
  const found = lookupInRootfs(root, 'usr/lib/rel');
  t.same(found.ok && found.hostPath, join(root, 'usr/lib/tool'));
  t.match(lookupInRootfs(root, 'usr/lib/climb'), { ok: false, reason: /leads outside the root filesystem/ });
  t.match(lookupInRootfs(root, 'usr/lib/tool/x'), { ok: false, reason: /\/usr\/lib\/tool is not a directory/ });
  t.equal(notExecutable(root, 'usr/lib/rel'), undefined);
});

t.test('mountedStacks: overlay lower dirs under the stacks dir, escaped paths, fsconfig syntax', async (t) => {
  const mounts = [
    'overlay /var/lib/slipway/dynos/d1/rootfs overlay rw,relatime,lowerdir=/var/lib/slipway/slugs/abc:/var/lib/slipway/stacks/heroku-24,upperdir=/u,workdir=/w 0 0',
    'overlay /var/lib/slipway/dynos/d\\0402/rootfs overlay rw,lowerdir=/var/lib/slipway/stacks/my\\040stack,upperdir=/u,workdir=/w 0 0',
    'overlay /mnt/x overlay rw,lowerdir+=/var/lib/slipway/slugs/abc,lowerdir+=/var/lib/slipway/stacks/busybox,upperdir=/u,workdir=/w 0 0',
    'overlay /mnt/y overlay rw,lowerdir=/var/lib/slipway/stacks-other/busybox,upperdir=/u,workdir=/w 0 0',
    'tmpfs /var/lib/slipway/stacks/busybox/tmp tmpfs rw 0 0',
  ].join('\n');
  const used = mountedStacks(mounts, '/var/lib/slipway/stacks/');
  t.same(Object.fromEntries(used), {
    'heroku-24': ['/var/lib/slipway/dynos/d1/rootfs'],
    'my stack': ['/var/lib/slipway/dynos/d 2/rootfs'],
    busybox: ['/mnt/x'],
  });
});
