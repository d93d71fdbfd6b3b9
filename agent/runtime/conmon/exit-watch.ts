// Waits for conmon's exit file (`<exitDir>/<containerId>`, holding the exit code). fs.watch
// wakes us at once; a slow poll backs it up because inotify can miss events on some
// filesystems, and it also notices a monitor that died without writing the file.
import { existsSync, watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Poll period behind fs.watch; bounds how late a missed exit is noticed. */
export const EXIT_POLL_MS = 2_000;

/** One timer polls every watched exit (a timer per dyno woke the agent 100 times a second
 * with 100 dynos: scripts/bench/density.sh). */
const polls = new Set<() => void>();
let pollTimer: NodeJS.Timeout | undefined;

function addPoll(check: () => void): () => void {
  polls.add(check);
  if (!pollTimer) {
    // Referenced: a CLI waiting for one dyno's exit must not end because of an idle loop.
    pollTimer = setInterval(() => { for (const c of [...polls]) c(); }, EXIT_POLL_MS);
  }
  return () => {
    polls.delete(check);
    if (polls.size === 0 && pollTimer) {
      clearInterval(pollTimer);
      pollTimer = undefined;
    }
  };
}

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
      stopPolling();
      watcher?.close();
      resolve(code);
    };
    const check = async () => {
      // A synchronous existence check (a few microseconds) keeps the idle poll of many dynos
      // off the thread pool; the file is read once it is there.
      if (!existsSync(file)) {
        if (!isAlive(monitorPid) && ++monitorGoneChecks > 1) settle(null);
        return;
      }
      const code = await readExitCode(file);
      if (code !== undefined && !Number.isNaN(code)) return settle(code);
      // conmon writes the exit file just before it exits; give it one more period.
      if (!isAlive(monitorPid) && ++monitorGoneChecks > 1) settle(null);
    };
    const stopPolling = addPoll(() => void check());
    try {
      watcher = watch(exitDir, () => void check());
      watcher.on('error', () => watcher?.close());
    } catch {
      // The poll alone still finds the exit.
    }
    void check();
  });
}
