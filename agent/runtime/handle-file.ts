// `<dyno dir>/handle.json`: what a driver needs to find its dyno again after an agent
// restart. Written atomically (temp file, fsync, rename, like all of the agent's own state)
// so that a crash leaves either the old file or the new one, never half of one.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../lib/atomic-file.js';
import { RUNTIME_NAMES, type DynoHandle } from './driver.js';

export const HANDLE_FILE = 'handle.json';
/** Bumped when the handle's shape changes incompatibly; a newer file is not guessed at. */
export const HANDLE_VERSION = 1;

export async function writeHandle(handle: DynoHandle): Promise<void> {
  await writeFileAtomic(join(handle.dir, HANDLE_FILE), JSON.stringify({ version: HANDLE_VERSION, handle }) + '\n');
}

/**
 * The handle persisted in `dir`, or undefined when there is none, it is unreadable, or it
 * was written by a newer agent (the caller treats the dyno as unknown; nothing crashes).
 */
export async function readHandle(dir: string): Promise<DynoHandle | undefined> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(join(dir, HANDLE_FILE), 'utf8'));
  } catch {
    return undefined;
  }
  if (!parsed || typeof parsed !== 'object') return undefined;
  const { version, handle } = parsed as { version?: unknown; handle?: Partial<DynoHandle> };
  if (version !== HANDLE_VERSION || !handle || typeof handle !== 'object') return undefined;
  if (!RUNTIME_NAMES.includes(handle.driver as never) || typeof handle.containerId !== 'string' || typeof handle.dynoId !== 'string') return undefined;
  // The file may have moved with its directory: the directory it is in is the truth.
  return { ...(handle as DynoHandle), dir };
}
