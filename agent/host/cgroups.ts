// Reads a container's cgroup files. slipway supports both hierarchies: this machine kind
// runs cgroup v1 (hybrid), current EC2 images run v2. Paths are the OCI cgroupsPath as runc
// creates them with its cgroupfs driver.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export type CgroupVersion = 1 | 2;

export function detectCgroupVersion(root = '/sys/fs/cgroup'): CgroupVersion {
  // On a v2 host the unified hierarchy is mounted at the root and lists its controllers.
  const controllers = join(root, 'cgroup.controllers');
  if (existsSync(controllers) && readFileSync(controllers, 'utf8').includes('memory')) return 2;
  return 1;
}

/** The file that counts OOM kills of the group: v1 memory.oom_control, v2 memory.events. */
export function oomCounterFile(cgroupPath: string, version: CgroupVersion, root = '/sys/fs/cgroup'): string {
  return version === 2 ? join(root, cgroupPath, 'memory.events') : join(root, 'memory', cgroupPath, 'memory.oom_control');
}

/** Parses `oom_kill N` from either file; 0 when the line is absent (older kernels). */
export function parseOomKills(text: string): number {
  const m = /^oom_kill (\d+)$/m.exec(text);
  return m ? Number(m[1]) : 0;
}

export async function readOomKills(cgroupPath: string, version: CgroupVersion, root = '/sys/fs/cgroup'): Promise<number | undefined> {
  try {
    return parseOomKills(await readFile(oomCounterFile(cgroupPath, version, root), 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * Every directory a cgroupsPath occupies, for cleanup and leftover checks. On v1 runc creates
 * the path in every mounted hierarchy, including named ones (name=systemd) and the empty v2
 * mount of a hybrid host (`unified`), so all of them are listed; symlinked aliases such as
 * `cpu,cpuacct` are skipped.
 */
export function cgroupDirs(cgroupPath: string, version: CgroupVersion, root = '/sys/fs/cgroup'): string[] {
  if (version === 2) return [join(root, cgroupPath)];
  return readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => join(root, e.name, cgroupPath));
}
