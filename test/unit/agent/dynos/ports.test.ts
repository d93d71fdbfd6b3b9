import t from 'tap';
import { createServer } from 'node:net';
import { PortAllocator } from '../../../../agent/dynos/ports.js';

const base = 33000 + Math.floor(Math.random() * 1000);

t.test('hands out distinct ports and reuses released ones', async (t) => {
  const p = new PortAllocator(base, base + 1, '127.0.0.1');
  const a = await p.reserve();
  const b = await p.reserve();
  t.not(a, b);
  await t.rejects(p.reserve(), { code: 'NO_FREE_PORT' });
  p.release(a);
  t.equal(await p.reserve(), a);
});

t.test('skips a port another process already holds', async (t) => {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(base + 10, '127.0.0.1', r));
  t.teardown(() => srv.close());
  const p = new PortAllocator(base + 10, base + 11, '127.0.0.1');
  t.equal(await p.reserve(), base + 11);
});

t.test('a bad range is a config error', async (t) => {
  t.throws(() => new PortAllocator(5, 1), { code: 'CONFIG_INVALID' });
});
