// The isolation suite (fixtures/isolation.ts) with LXC dynos.
import t from 'tap';
import { LxcDriver } from '../../../../agent/runtime/lxc/driver.js';
import { quietLogger } from '../../../helpers/host.js';
import { isolationSuite } from './fixtures/isolation.js';

isolationSuite(t, { name: 'lxc', make: async (cgroupParent) => new LxcDriver({ cgroupParent, log: quietLogger() }) });
