// The runtime conformance suite (fixtures/conformance.ts) against real LXC 5 (lxc-execute)
// under conmon.
import { execFileSync } from 'node:child_process';
import { LxcDriver } from '../../../../../agent/runtime/lxc/driver.js';
import { quietLogger } from '../../../../helpers/host.js';
import { conformance } from '../fixtures/conformance.js';

conformance({
  name: 'lxc',
  make: async (cgroupParent) => new LxcDriver({ cgroupParent, log: quietLogger() }),
  // lxc-execute containers are not listed by lxc-ls (no lxcpath of ours); a live one has its
  // lxc-execute process, which names the container.
  containersOf: (dynoId) => execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n')
    .filter((a) => a.startsWith('lxc-execute') && a.includes(` ${LxcDriver.containerId(dynoId)} `)),
});
