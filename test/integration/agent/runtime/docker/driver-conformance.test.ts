// The runtime conformance suite (fixtures/conformance.ts) against the real Docker engine
// (docker.io from Debian, started by scripts/start-dockerd.sh).
import { execFileSync } from 'node:child_process';
import { DockerDriver } from '../../../../../agent/runtime/docker/driver.js';
import { quietLogger } from '../../../../helpers/host.js';
import { conformance } from '../fixtures/conformance.js';

conformance({
  name: 'docker',
  make: async (cgroupParent) => new DockerDriver({ cgroupParent, log: quietLogger() }),
  containersOf: (dynoId) => execFileSync('docker', ['ps', '-aq', '--filter', `label=slipway.dyno=${dynoId}`], { encoding: 'utf8' }).split('\n').filter(Boolean),
});
