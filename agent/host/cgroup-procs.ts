// The processes of a dyno, read from its cgroup, and signals to all of them. This is how
// "SIGTERM to every process of the dyno" is done for runtimes whose own kill reaches only
// pid 1 (Docker) or has no kill at all (lxc-execute): the cgroup holds every process the dyno
// forked, daemonized or not, and nothing else.
//
// A dyno's cgroup is always `<cgroupParent>/<name>`: two levels at least below the root. Any
// shallower path is refused here, whatever the caller, because signalling "every process of
// the cgroup" for `/` means every process on the host. (Found the hard way: the cgroup of an
// exiting process, read from /proc/PID/cgroup while it is a zombie, is `/` under cgroup v1.)
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SlipwayError } from '../../shared/errors.js';
import type { CgroupVersion } from './cgroups.js';

/** Throws unless `cgroupPath` is absolute, free of `..`, and at least two levels deep. */
export function assertDynoCgroup(cgroupPath: string): string {
  const segments = cgroupPath.split('/').filter((s) => s !== '');
  if (!cgroupPath.startsWith('/') || segments.length < 2 || segments.some((s) => s === '..' || s === '.')) {
    throw new SlipwayError('RUNTIME_FAILED', `refusing to act on cgroup ${JSON.stringify(cgroupPath)}: not a dyno cgroup (<cgroupParent>/<name>)`);
  }
  return cgroupPath;
}

/** The directory whose cgroup.procs lists the group's processes: v1 uses the pids
 * hierarchy (every dyno is in it, for its pids limit), v2 the unified one. */
export function procsDir(cgroupPath: string, version: CgroupVersion, root = '/sys/fs/cgroup'): string {
  assertDynoCgroup(cgroupPath);
  return version === 2 ? join(root, cgroupPath) : join(root, 'pids', cgroupPath);
}

/** Every pid in the cgroup and its descendants; [] when the cgroup is gone. */
export async function cgroupPids(cgroupPath: string, version: CgroupVersion, root = '/sys/fs/cgroup'): Promise<number[]> {
  const pids: number[] = [];
  const walk = async (dir: string): Promise<void> => {
    let text: string;
    try {
      text = await readFile(join(dir, 'cgroup.procs'), 'utf8');
    } catch {
      return;
    }
    for (const line of text.split('\n')) if (line) pids.push(Number(line));
    const children = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const c of children) if (c.isDirectory()) await walk(join(dir, c.name));
  };
  await walk(procsDir(cgroupPath, version, root));
  return pids;
}

/** Sends `signal` to every process of the cgroup; returns how many were signalled. A
 * process that exits in between is skipped. */
export async function signalCgroup(cgroupPath: string, version: CgroupVersion, signal: NodeJS.Signals, root = '/sys/fs/cgroup'): Promise<number> {
  let n = 0;
  for (const pid of await cgroupPids(cgroupPath, version, root)) {
    try {
      process.kill(pid, signal);
      n++;
    } catch { /* already gone */ }
  }
  return n;
}
