// Small pieces the drivers share: the graceful stop sequence, and reading what a monitor left
// in files.
import { readFile } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import type { DynoExit, DynoHandle } from './driver.js';

/** After SIGKILL to every process the kernel tears them down promptly; past this the dyno is
 * reported with an unknown exit rather than stalling the stop. */
export const KILL_SETTLE_TIMEOUT_MS = 10_000;

/** Heroku's stop on any driver: SIGTERM to every process of the dyno, once each (nothing in
 * the dyno passes it on: agent/dynos/entrypoint.ts has the contract), up to graceMs, then
 * SIGKILL to all; `forced` tells whether the grace ran out (R12). */
export async function gracefulStop(
  d: { wait(h: DynoHandle): Promise<DynoExit>; signal(h: DynoHandle, s: 'SIGTERM' | 'SIGKILL'): Promise<void> },
  handle: DynoHandle,
  graceMs: number,
): Promise<{ forced: boolean; exit: DynoExit }> {
  const exited = d.wait(handle);
  await d.signal(handle, 'SIGTERM');
  const inGrace = await raceTimeout(exited, graceMs);
  if (inGrace) return { forced: false, exit: inGrace };
  await d.signal(handle, 'SIGKILL');
  const afterKill = await raceTimeout(exited, KILL_SETTLE_TIMEOUT_MS);
  return { forced: true, exit: afterKill ?? { code: null, signal: 'SIGKILL', oomKilled: false } };
}

export async function raceTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), ms); });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The signal behind a shell-style exit code (128+N), or null. */
export function signalFromExitCode(code: number | null): string | null {
  if (code === null || code <= 128) return null;
  for (const [name, num] of Object.entries(osConstants.signals)) if (num === code - 128) return name;
  return null;
}

export async function readPid(file: string): Promise<number | undefined> {
  try {
    const n = Number.parseInt((await readFile(file, 'utf8')).trim(), 10);
    return Number.isFinite(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** The one promise for `key`, made on first ask: every caller of a driver's wait() for one
 * container shares one watch. */
export function shared<K, V>(map: Map<K, Promise<V>>, key: K, make: () => Promise<V>): Promise<V> {
  let p = map.get(key);
  if (!p) {
    p = make();
    map.set(key, p);
  }
  return p;
}
