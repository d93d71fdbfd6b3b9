// The isolation suite (fixtures/isolation.ts) with Docker dynos: each joins the namespace a
// pause container holds (agent/runtime/docker/pause.ts). The real engine (docker.io, started by
// scripts/start-dockerd.sh).
import t from 'tap';
import { join } from 'node:path';
import { DockerDriver } from '../../../../agent/runtime/docker/driver.js';
import { busyboxStack, quietLogger } from '../../../helpers/host.js';
import { isolationSuite } from './fixtures/isolation.js';

const stacksDir = join(busyboxStack(), '..');
isolationSuite(t, { name: 'docker', make: async (cgroupParent) => new DockerDriver({ cgroupParent, log: quietLogger(), stackDir: (name) => join(stacksDir, name) }) });
