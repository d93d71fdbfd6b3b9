// Launches conmon, the monitor that keeps a runc container's stdio, log file and exit status
// outside the agent process, so that an agent restart neither kills a dyno nor loses its
// output; the runc and LXC drivers both use it. conmon (Debian 2.1.6) runs `runc create` and
// reports the container's pid (or the create error) on the sync pipe given in _OCI_SYNCPIPE,
// the protocol podman uses; we then close our end and conmon lives on, reparented to init.
import { spawn } from 'node:child_process';
import { SlipwayError } from '../../../shared/errors.js';
import { LOG_SIZE_MAX_BYTES } from '../hardening.js';
import type { ContainerStdio } from '../driver.js';

/** runc create of a busybox bundle takes ~80 ms here; 30 s covers a loaded host with a
 * cold page cache and still frees the start slot of a wedged runtime. */
export const CONMON_CREATE_TIMEOUT_MS = 30_000;

export interface ConmonLaunch {
  conmonPath: string;
  /** The OCI runtime conmon drives: runc, or the LXC driver's shim (lxc/scripts.ts). */
  runtimePath: string;
  /** Global arguments for the runtime, before `create`. */
  runtimeArgs: string[];
  containerId: string;
  bundleDir: string;
  pidFile: string;
  conmonPidFile: string;
  exitDir: string;
  socketDir: string;
  logPath: string;
  /** An attached dyno (ContainerSpec.stdio): `-i` keeps a stdin for the attach socket, `-t`
   * has conmon pass --console-socket to the runtime's create and hold the terminal's master,
   * and `-l none:` writes no log (a one-off's output is the attach's, as Heroku's `heroku run`
   * output is not in the app's logs). */
  stdio?: ContainerStdio;
}

export function conmonArgs(l: ConmonLaunch): string[] {
  return [
    '--api-version', '1',
    '-c', l.containerId,
    // conmon builds its attach socket path from -u; a short uuid keeps it under the 108-byte
    // unix socket limit whatever the state dir's length.
    '-u', l.containerId.slice(-12),
    '-n', l.containerId,
    '-r', l.runtimePath,
    '-b', l.bundleDir,
    '-p', l.pidFile,
    '--conmon-pidfile', l.conmonPidFile,
    '--exit-dir', l.exitDir,
    '--socket-dir-path', l.socketDir,
    ...(l.stdio
      ? ['-l', 'none:', ...(l.stdio.stdin ? ['-i'] : []), ...(l.stdio.tty ? ['-t'] : [])]
      : ['-l', `k8s-file:${l.logPath}`, '--log-size-max', String(LOG_SIZE_MAX_BYTES)]),
    ...l.runtimeArgs.flatMap((a) => ['--runtime-arg', a]),
  ];
}

/** Starts conmon and resolves with the container's pid once `runc create` succeeded. */
export function launchConmon(l: ConmonLaunch): Promise<number> {
  return new Promise((resolve, reject) => {
    // stdio is /dev/null except the sync pipe: a pipe to the agent would SIGPIPE conmon
    // after an agent restart.
    const child = spawn(l.conmonPath, conmonArgs(l), {
      stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', _OCI_SYNCPIPE: '3' },
      detached: true,
    });
    const sync = child.stdio[3] as NodeJS.ReadableStream & { destroy(): void };
    let buf = '';
    let done = false;
    const finish = (err: Error | null, pid?: number) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sync.destroy();
      child.unref();
      if (err) reject(err);
      else resolve(pid as number);
    };
    const timer = setTimeout(
      () => finish(new SlipwayError('RUNTIME_TIMEOUT', `conmon did not report ${l.containerId} created within ${CONMON_CREATE_TIMEOUT_MS} ms`)),
      CONMON_CREATE_TIMEOUT_MS,
    );
    child.on('error', (err) => finish(new SlipwayError('RUNTIME_FAILED', `conmon: ${err.message}`, { cause: err })));
    sync.on('data', (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      let msg: { data?: number; message?: string };
      try {
        msg = JSON.parse(buf.slice(0, nl)) as typeof msg;
      } catch {
        return finish(new SlipwayError('RUNTIME_FAILED', `conmon sent an unreadable sync message: ${buf.slice(0, 200)}`));
      }
      if (typeof msg.data === 'number' && msg.data > 0) return finish(null, msg.data);
      finish(new SlipwayError('RUNTIME_FAILED', `${l.runtimePath} create ${l.containerId} failed: ${(msg.message ?? 'no message').slice(0, 500)}`));
    });
    sync.on('end', () => finish(new SlipwayError('RUNTIME_FAILED', `conmon closed the sync pipe before ${l.containerId} was created (is --exit-dir writable?)`)));
  });
}
