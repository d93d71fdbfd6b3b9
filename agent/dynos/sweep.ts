// Removes every dyno container, mount and directory under the state dir. Used at agent
// start (this version cannot re-adopt dynos yet, so what a previous run left is owned by
// nobody and must not leak) and by `slipway-agent cleanup`.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../lib/log.js';
import type { RuntimeDriver } from '../runtime/driver.js';
import { RuncDriver } from '../runtime/runc/driver.js';

export async function sweepDynos(dynosDir: string, driver: RuntimeDriver, log: Logger): Promise<string[]> {
  let ids: string[];
  try {
    ids = (await readdir(dynosDir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return [];
  }
  for (const id of ids) {
    const handle = { driver: driver.name, containerId: RuncDriver.containerId(id), dir: join(dynosDir, id) };
    log.warn({ dynoId: id }, 'removing a dyno left by an earlier agent run');
    await driver.destroy(handle).catch((err: unknown) => log.error({ err, dynoId: id }, 'could not remove leftover dyno'));
  }
  return ids;
}
