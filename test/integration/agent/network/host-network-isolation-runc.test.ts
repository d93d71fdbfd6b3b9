// The isolation suite (fixtures/isolation.ts) with runc dynos.
import t from 'tap';
import { RuncDriver } from '../../../../agent/runtime/runc/driver.js';
import { quietLogger } from '../../../helpers/host.js';
import { isolationSuite } from './fixtures/isolation.js';

isolationSuite(t, { name: 'runc', make: async (cgroupParent) => new RuncDriver({ cgroupParent, log: quietLogger() }) });
