// Runs a host binary (runc, conmon, mount) with a hard time bound. Every call into a
// runtime goes through here so that one wedged container cannot stall the agent: on the
// deadline the child is SIGKILLed and the call fails with RUNTIME_TIMEOUT.
import { spawn } from 'node:child_process';
import { SlipwayError } from '../../shared/errors.js';

export interface ExecResult { code: number; stdout: string; stderr: string }

const MAX_CAPTURE = 64 * 1024;

export function execBounded(
  file: string,
  args: readonly string[],
  options: { timeoutMs: number; allowFailure?: boolean; input?: string },
): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs);
    child.stdout?.on('data', (b: Buffer) => { if (stdout.length < MAX_CAPTURE) stdout += b.toString('utf8'); });
    child.stderr?.on('data', (b: Buffer) => { if (stderr.length < MAX_CAPTURE) stderr += b.toString('utf8'); });
    if (child.stdin) {
      // A child that exits without reading its input must not crash us with EPIPE.
      child.stdin.on('error', () => undefined);
      child.stdin.end(options.input);
    }
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new SlipwayError('RUNTIME_FAILED', `${file}: ${err.message}`, { cause: err }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const what = `${file} ${args.slice(0, 3).join(' ')}`;
      if (timedOut) return reject(new SlipwayError('RUNTIME_TIMEOUT', `${what} did not finish within ${options.timeoutMs} ms`));
      const exit = code ?? 128;
      if (exit !== 0 && !options.allowFailure) {
        return reject(new SlipwayError('RUNTIME_FAILED', `${what} failed (${signal ?? exit}): ${stderr.trim().slice(0, 500)}`));
      }
      resolve({ code: exit, stdout, stderr });
    });
  });
}
