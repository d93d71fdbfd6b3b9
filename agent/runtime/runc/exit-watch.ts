// Waits for conmon's exit file (`<exitDir>/<containerId>`, holding the exit code). fs.watch
// wakes us at once; a slow poll backs it up because inotify can miss events on some
// filesystems, and it also notices a monitor that died without writing the file.
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Poll period behind fs.watch; bounds how late a missed exit is noticed. */
export const EXIT_POLL_MS = 1_000;

export function isAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readExitCode(file: string): Promise<number | undefined> {
  try {
    const text = (await readFile(file, 'utf8')).trim();
    return text === '' ? undefined : Number.parseInt(text, 10);
  } catch {
    return undefined;
  }
}

/** Resolves with the exit code, or null when the monitor vanished without recording one. */
export function watchExit(exitDir: string, containerId: string, monitorPid: number | undefined): Promise<number | null> {
  const file = join(exitDir, containerId);
  return new Promise((resolve) => {
    let watcher: FSWatcher | undefined;
    let settled = false;
    let monitorGoneChecks = 0;
    const settle = (code: number | null) => {
      if (settled) return;
      settled = true;
      clearInterval(timer);
      watcher?.close();
      resolve(code);
    };
    const check = async () => {
      const code = await readExitCode(file);
      if (code !== undefined && !Number.isNaN(code)) return settle(code);
      // conmon writes the exit file just before it exits; give it one more period.
      if (!isAlive(monitorPid) && ++monitorGoneChecks > 1) settle(null);
    };
    const timer = setInterval(() => void check(), EXIT_POLL_MS);
    try {
      watcher = watch(exitDir, () => void check());
      watcher.on('error', () => watcher?.close());
    } catch {
      // The poll alone still finds the exit.
    }
    void check();
  });
}
