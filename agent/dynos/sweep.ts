// Removes dyno containers, mounts and directories under the state dir: at agent start those
// that no dyno record owns (DynoManager.recover re-adopts the others), and all of them for
// `slipway-agent cleanup`. Each dyno dir is destroyed by the
// driver that made it, as its handle.json says; a dir without a handle (a start that died
// before persisting one) by each of the fallback drivers, which may have begun it.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../shared/log.js';
import type { DynoHandle, RuntimeDriver, RuntimeName } from '../runtime/driver.js';
import { readHandle } from '../runtime/handle-file.js';

/** A handle for a dyno dir that has none (its start died before persisting one), naming the
 * container a driver would have made, so that driver.destroy() removes whatever exists. */
export function leftoverHandle(driver: RuntimeName, dynoId: string, dir: string): DynoHandle {
  return { driver, dynoId, containerId: `slipway-${dynoId}`, dir, startedAt: new Date(0).toISOString() };
}

export async function sweepDynos(
  dynosDir: string,
  driverFor: (name: RuntimeName) => Promise<RuntimeDriver | undefined>,
  fallback: RuntimeName[],
  log: Logger,
  /** Dyno ids to leave alone (re-adopted ones); default: none. */
  keep: (id: string) => boolean = () => false,
): Promise<string[]> {
  let ids: string[];
  try {
    ids = (await readdir(dynosDir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return [];
  }
  ids = ids.filter((id) => !keep(id));
  for (const id of ids) {
    const dir = join(dynosDir, id);
    const saved = await readHandle(dir);
    log.warn({ dynoId: id, driver: saved?.driver, containerId: saved?.containerId }, 'removing a dyno container nobody owns (no dyno record)');
    for (const name of saved ? [saved.driver] : fallback) {
      const driver = await driverFor(name);
      if (!driver) continue;
      const handle = saved ?? leftoverHandle(name, id, dir);
      await driver.destroy(handle).catch((err: unknown) => log.error({ err, dynoId: id, driver: name }, 'could not remove leftover dyno'));
    }
  }
  return ids;
}
