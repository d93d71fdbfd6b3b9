// HAProxy 2.6 itself (`haproxy -c`) accepts what config.ts generates: many apps, IPv4 and IPv6
// dynos, another host domain; and checkConfig reports what it refuses with a code.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { mapEntries, renderConfig, renderMap } from '../../../../coordinator/haproxy/config.js';
import { checkConfig } from '../../../../coordinator/haproxy/process.js';
import { HAPROXY, haveHaproxy } from './fixtures/router.js';

const skip = !haveHaproxy && 'no /usr/sbin/haproxy';

t.test('the generated config passes haproxy -c', { skip }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'slipway-hapcfg-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const paths = { config: join(dir, 'haproxy.cfg'), map: join(dir, 'hosts.map'), adminSocket: join(dir, 'admin.sock'), masterSocket: join(dir, 'master.sock') };
  const apps = Array.from({ length: 50 }, (_, i) => `app${i}`);
  const backends = apps.map((app, i) => ({
    app, servers: Array.from({ length: 4 }, (_, j) => ({ name: `${app}-web-${j + 1}-abcdef`, host: j % 2 ? `fd00::${i + 1}` : `10.0.${i}.${j + 1}`, port: 40_000 + j })),
  }));
  for (const hostDomain of ['localhost', 'apps.example.test']) {
    await writeFile(paths.map, renderMap(mapEntries(apps, hostDomain)));
    await writeFile(paths.config, renderConfig({ paths, listen: { host: '::1', port: 7780 }, hostDomain, upstreamTimeoutMs: 30_000, backends }));
    await checkConfig(HAPROXY, paths.config);
    t.pass(`accepted for ${hostDomain}`);
  }
  await writeFile(paths.config, 'frontend x\n    bind 127.0.0.1:1\n    use_backend nope\n');
  await t.rejects(checkConfig(HAPROXY, paths.config), { code: 'ROUTER_COMMAND_FAILED', message: /nope/ });
});
