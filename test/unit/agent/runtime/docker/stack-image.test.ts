// The stack's /etc/hosts as the Docker driver binds it into a dyno with a network of its own
// (stack-image.ts stackHostsFile): a regular file inside the stack, never one a symlink leads
// to outside it (the path is resolved on the host, not in the dyno).
import t from 'tap';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stackHostsFile } from '../../../../../agent/runtime/docker/stack-image.js';
import { tempDir } from '../../../../helpers/host.js';

async function stackWith(t: Parameters<typeof tempDir>[0], make: (stack: string, outside: string) => void): Promise<string> {
  const dir = await tempDir(t);
  const stack = join(dir, 'stack');
  const outside = join(dir, 'outside');
  mkdirSync(outside);
  writeFileSync(join(outside, 'hosts'), '10.0.0.1 the-host\n');
  mkdirSync(stack);
  make(stack, outside);
  return stack;
}

t.test("a regular /etc/hosts of the stack is bound, found through the stack's own links", async (t) => {
  const plain = await stackWith(t, (s) => { mkdirSync(join(s, 'etc')); writeFileSync(join(s, 'etc', 'hosts'), '127.0.0.1 localhost\n'); });
  t.match(await stackHostsFile(plain), /\/stack\/etc\/hosts$/);
  const linked = await stackWith(t, (s) => {
    mkdirSync(join(s, 'etc'));
    mkdirSync(join(s, 'usr'));
    writeFileSync(join(s, 'usr', 'hosts'), '127.0.0.1 localhost\n');
    symlinkSync('../usr/hosts', join(s, 'etc', 'hosts'));
  });
  t.match(await stackHostsFile(linked), /\/stack\/usr\/hosts$/, 'a relative link inside the stack: the file it names');
});

t.test('nothing when the stack has none, or it is not a file inside the stack', async (t) => {
  t.equal(await stackHostsFile(await stackWith(t, () => undefined)), undefined, 'no /etc');
  t.equal(await stackHostsFile(await stackWith(t, (s) => mkdirSync(join(s, 'etc')))), undefined, 'no /etc/hosts');
  t.equal(await stackHostsFile(await stackWith(t, (s) => mkdirSync(join(s, 'etc', 'hosts'), { recursive: true }))), undefined, 'a directory');
  t.equal(await stackHostsFile(await stackWith(t, (s, out) => { mkdirSync(join(s, 'etc')); symlinkSync(join(out, 'hosts'), join(s, 'etc', 'hosts')); })), undefined, 'a link to a host file');
  t.equal(await stackHostsFile(await stackWith(t, (s, out) => symlinkSync(out, join(s, 'etc')))), undefined, '/etc a link to a host directory');
  t.equal(await stackHostsFile(await stackWith(t, (s) => { mkdirSync(join(s, 'etc')); symlinkSync('/etc/hosts', join(s, 'etc', 'hosts')); })), undefined, "an absolute link: the host's /etc/hosts, not the stack's");
  t.equal(await stackHostsFile('/nonexistent/stack'), undefined, 'no stack dir');
});
