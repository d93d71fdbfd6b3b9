// The runtime API client over real unix sockets: a stand-in that answers, one that never
// does, none at all; and real HAProxy's refusals, each with its code.
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { RuntimeApi } from '../../../../coordinator/haproxy/runtime-api.js';
import { haveHaproxy, startRouter } from './fixtures/router.js';

async function fakeSocket(t: Test, answer: ((command: string, socket: Socket) => void)): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'slipway-hapapi-'));
  const path = join(dir, 'admin.sock');
  const sockets = new Set<Socket>();
  // allowHalfOpen: the client's half-close must not end our side, as it does not end a hung
  // HAProxy's.
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    let line = '';
    socket.on('data', (c: Buffer) => {
      line += c.toString('utf8');
      if (line.endsWith('\n')) answer(line.trim(), socket);
    });
    socket.on('error', () => undefined);
  });
  server.listen(path);
  await once(server, 'listening');
  t.teardown(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(dir, { recursive: true, force: true });
  });
  return path;
}

t.test('one command per connection: the answer is all until HAProxy closes', async (t) => {
  const path = await fakeSocket(t, (cmd, s) => s.end(cmd === 'show backend' ? '# name\napp_shop\n\n' : cmd === 'add server a/b 1.2.3.4:5' ? 'New server registered.\n' : 'Unknown command, but maybe...\n'));
  const api = new RuntimeApi(path);
  t.equal(await api.show('show backend'), '# name\napp_shop\n\n');
  t.equal(await api.run('add server a/b 1.2.3.4:5', /New server registered/), 'New server registered.\n');
  await t.rejects(api.run('enable server a/b'), { code: 'ROUTER_COMMAND_FAILED', message: 'HAProxy refused "enable server a/b": Unknown command, but maybe...' });
  await t.rejects(api.show('show nothing'), { code: 'ROUTER_COMMAND_FAILED' });
  await t.rejects(api.send('show info;shutdown frontend x'), { code: 'INTERNAL' }, 'one command, never a list');
});

t.test('bounded: ROUTER_UNAVAILABLE when nothing answers, or nothing listens', async (t) => {
  const path = await fakeSocket(t, () => undefined);
  const began = Date.now();
  await t.rejects(new RuntimeApi(path, 150).send('show info'), { code: 'ROUTER_UNAVAILABLE', message: /within 150 ms/ });
  t.ok(Date.now() - began < 2_000);
  await t.rejects(new RuntimeApi(join(tmpdir(), 'slipway-no-such.sock')).send('show info'), { code: 'ROUTER_UNAVAILABLE', message: /ENOENT/ });
});

t.test("real HAProxy's refusals", { skip: !haveHaproxy && 'no /usr/sbin/haproxy' }, async (t) => {
  const h = await startRouter(t);
  await t.rejects(h.admin.show('show servers state app_nope'), { code: 'ROUTER_COMMAND_FAILED', message: /Can't find backend/ });
  await t.rejects(h.admin.show('show stat app_nope 4 -1'), { code: 'ROUTER_COMMAND_FAILED', message: /No such proxy/ });
  await t.rejects(h.admin.run('add server app_nope/x 127.0.0.1:1', /New server registered/), { code: 'ROUTER_COMMAND_FAILED', message: /No such backend/ });
  await t.rejects(h.admin.run('set server app_nope/x state drain'), { code: 'ROUTER_COMMAND_FAILED' });
  await t.rejects(h.admin.show('show map /nope.map'), { code: 'ROUTER_COMMAND_FAILED', message: /Unknown map/ });
  t.match(await h.master.show('show proc'), /master/);
});
