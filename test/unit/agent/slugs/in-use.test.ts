import t from 'tap';
import { mountedSlugs } from '../../../../agent/slugs/in-use.js';

const a = 'a'.repeat(64);
const b = 'b'.repeat(64);

t.test('finds slugs used as overlay lower dirs of the store, and nothing else', async (t) => {
  const mounts = [
    `overlay /var/lib/slipway/dynos/d1/rootfs overlay rw,relatime,lowerdir=/var/lib/slipway/slugs/${a}:/var/lib/slipway/stacks/busybox,upperdir=/x/upper,workdir=/x/work 0 0`,
    `overlay /other overlay rw,lowerdir=/elsewhere/slugs/${b}:/s,upperdir=/u,workdir=/w 0 0`,
    `tmpfs /var/lib/slipway/slugs/${b} tmpfs rw 0 0`,
    'proc /proc proc rw 0 0',
  ].join('\n');
  t.same([...mountedSlugs(mounts, '/var/lib/slipway/slugs')], [a]);
});

t.test('octal escapes in mount fields are decoded', async (t) => {
  const mounts = `overlay /r overlay rw,lowerdir=/srv/my\\040state/slugs/${a}:/s,upperdir=/u,workdir=/w 0 0`;
  t.same([...mountedSlugs(mounts, '/srv/my state/slugs')], [a]);
});
