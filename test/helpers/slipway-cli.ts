// Runs the developer CLI `slipway` (dist/cli/main.js) as a developer does, to its end
// (bounded), with exactly the environment given: a HOME of the test's own keeps any
// credentials file of the machine out.
import { spawn, type ChildProcess, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { constants } from 'node:os';
import { join } from 'node:path';
import { REPO } from './host.js';
import { TEST_API_TOKEN } from './http.js';

export interface CliRun { code: number | null; stdout: string; stderr: string }

/** The environment of a developer with the tests' API token for `apiUrl`. */
export function developerEnv(apiUrl: string, home = '/nonexistent'): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, SLIPWAY_API_URL: apiUrl, SLIPWAY_API_TOKEN: TEST_API_TOKEN };
}

export function runSlipway(env: NodeJS.ProcessEnv, args: string[], timeoutMs = 60_000): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(REPO, 'dist', 'cli', 'main.js'), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => { stdout += b.toString('utf8'); });
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString('utf8'); });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`slipway ${args.join(' ')} ran over ${timeoutMs} ms`)); }, timeoutMs);
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

/** `slipway ARGS` as a running process whose stdio the test drives (an attached run), killed
 * at the test's end if it still runs. */
export function spawnSlipway(t: { teardown(fn: () => void): void }, env: NodeJS.ProcessEnv, args: string[]): ChildProcessWithoutNullStreams {
  const child = spawn(process.execPath, [join(REPO, 'dist', 'cli', 'main.js'), ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  return child;
}

/** Resolves with a spawned process's exit code (128 + N for a signal), bounded. */
export function exitOf(child: ChildProcess, timeoutMs = 60_000): Promise<number> {
  return new Promise((resolve, reject) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`process ${child.pid} ran over ${timeoutMs} ms`)); }, timeoutMs);
    child.once('exit', (code, signal) => { clearTimeout(timer); resolve(code ?? (signal ? 128 + (constants.signals[signal] ?? 0) : 1)); });
  });
}
