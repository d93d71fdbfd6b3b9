// The Node.js runtime is one version everywhere: the one scripts/install-node.sh pins is the
// one the tests run on, the one package.json's engines admit, and the one the systemd unit
// starts the agent with. A host's own node (Debian 12 carries 18; this machine image 20) must
// not be what runs slipway.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from '../../helpers/host.js';

const installer = readFileSync(join(REPO, 'scripts/install-node.sh'), 'utf8');
const pinned = /^NODE_VERSION=(\d+\.\d+\.\d+)$/m.exec(installer)?.[1];
const base = /^BASE=(\S+)$/m.exec(installer)?.[1];

t.test('the tests run on the pinned Node.js 24 LTS', async (t) => {
  t.match(pinned, /^24\./, 'install-node.sh pins a Node 24 release');
  t.equal(process.version, `v${pinned}`, 'this process runs the pinned runtime');
  t.equal(process.release.lts, 'Krypton', 'Node 24 is the Krypton LTS line');
});

t.test('package.json and the systemd unit name that runtime', async (t) => {
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { engines: { node: string }; devDependencies: Record<string, string> };
  t.equal(pkg.engines.node, '>=24.11.0 <25', 'engines admit Node 24 LTS only');
  t.match(pkg.devDependencies['@types/node'], /^\^24\./, 'types of the same major');
  const unit = readFileSync(join(REPO, 'systemd/slipway-agent.service'), 'utf8');
  t.match(unit, new RegExp(`^ExecStart=${base}/current/bin/node `, 'm'), 'the unit starts the agent with the installed runtime');
});
