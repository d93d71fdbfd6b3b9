// recover() of the drivers whose monitor is conmon (runc, LXC): what an agent that restarted
// finds of a dyno its predecessor started.
import { join } from 'node:path';
import type { RecoveredDyno, RuntimeDriver } from '../driver.js';
import { readHandle } from '../handle-file.js';
import { readPid } from '../common.js';

/** The persisted handle, the monitor's pid, and the runtime's view of the container.
 * `created` or `missing` means nothing of the dyno runs (for `created`, the agent died
 * between create and start). */
export async function recoverMonitored(driver: Pick<RuntimeDriver, 'name' | 'inspect'>, dir: string): Promise<RecoveredDyno | undefined> {
  const handle = await readHandle(dir);
  if (!handle || handle.driver !== driver.name) return undefined;
  handle.monitorPid ??= await readPid(join(dir, 'conmon.pid'));
  const state = await driver.inspect(handle);
  if (state.status === 'missing' || state.status === 'created') return undefined;
  if (state.pid !== undefined) handle.pid = state.pid;
  return { handle, running: state.status === 'running' };
}
