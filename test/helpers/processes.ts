// Spawns the built executables (dist/) as real processes and reads their pino JSON logs.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { REPO } from './host.js';
import { TEST_API_TOKEN } from './http.js';

export interface Spawned {
  child: ChildProcess;
  lines: Record<string, unknown>[];
  /** Resolves with the first log line matching `msg` (bounded). */
  waitFor(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** SIGTERM, then SIGKILL after the bound; resolves when the process is gone. */
  stop(timeoutMs?: number): Promise<void>;
}

export function spawnBin(bin: 'agent' | 'coordinator' | 'cli', args: string[], env: NodeJS.ProcessEnv = {}): Spawned {
  const child = spawn(process.execPath, [join(REPO, 'dist', bin, 'main.js'), ...args], {
    // A coordinator takes the tests' API token unless the test gives its own.
    env: { ...process.env, ...(bin === 'coordinator' ? { SLIPWAY_API_TOKEN: TEST_API_TOKEN } : {}), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  const waiters: { msg: string; resolve: (l: Record<string, unknown>) => void }[] = [];
  let buf = '';
  child.stdout.on('data', (b: Buffer) => {
    buf += b.toString('utf8');
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const raw = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let line: Record<string, unknown>;
      try { line = JSON.parse(raw) as Record<string, unknown>; } catch { continue; }
      lines.push(line);
      for (const w of [...waiters]) if (line.msg === w.msg) { waiters.splice(waiters.indexOf(w), 1); w.resolve(line); }
    }
  });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => { stderr += b.toString('utf8'); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    lines,
    waitFor(msg, timeoutMs = 20_000) {
      const seen = lines.find((l) => l.msg === msg);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`${bin}: no "${msg}" within ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}`)), timeoutMs);
        waiters.push({ msg, resolve: (l) => { clearTimeout(t); resolve(l); } });
        child.once('exit', (code) => { clearTimeout(t); reject(new Error(`${bin} exited (${code}) before "${msg}"; stderr: ${stderr.slice(-2000)}`)); });
      });
    },
    async stop(timeoutMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await exited;
      clearTimeout(t);
    },
  };
}
