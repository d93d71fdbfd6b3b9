// The README's example of two coordinators behind HAProxy (docs/examples/coordinators-haproxy.cfg)
// stays true: HAProxy 2.6 accepts it, its health check asks the path that answers 200 only on
// the leader, and its ports are the coordinator's defaults.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { DEFAULT_LISTEN, DEFAULT_ROUTER_LISTEN } from '../../../coordinator/config.js';
import { REPO } from '../../helpers/host.js';

const file = join(REPO, 'docs/examples/coordinators-haproxy.cfg');
const text = readFileSync(file, 'utf8');

t.test('HAProxy accepts the example', { skip: existsSync('/usr/sbin/haproxy') ? false : 'haproxy is not installed (scripts/setup.sh installs it)' }, async (t) => {
  const out = execFileSync('/usr/sbin/haproxy', ['-c', '-f', file], { encoding: 'utf8', timeout: 10_000 });
  t.match(out, /Configuration file is valid/, 'haproxy -c');
});

t.test('the health check is the leader check, on the coordinator\'s ports', async (t) => {
  const api = readFileSync(join(REPO, 'coordinator/http-api.ts'), 'utf8');
  t.match(text, /option httpchk GET \/v1\/leader/, 'it checks GET /v1/leader');
  t.match(api, /'\/v1\/leader'/, 'which the coordinator serves');
  const apiPort = DEFAULT_LISTEN.split(':').at(-1)!;
  const routerPort = DEFAULT_ROUTER_LISTEN.split(':').at(-1)!;
  t.match(text, new RegExp(`server coord-a \\S+:${apiPort}\\b`), `API servers on the default --listen port ${apiPort}`);
  t.match(text, new RegExp(`server coord-a \\S+:${routerPort} check port ${apiPort}`), `router servers on the default --router-listen port ${routerPort}, checked on the API port`);
});
