// Helpers for tests that touch the real host: the busybox stack, a unique cgroup parent,
// and the leftover check every integration test ends with.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { cgroupDirs, detectCgroupVersion } from '../../agent/host/cgroups.js';
import { createRootLogger, type Logger } from '../../shared/log.js';

export const REPO = resolve(import.meta.dirname, '../..');
const STACK_CACHE = '/tmp/slipway-test-stacks';

/** Builds (once, cached) the busybox stack and returns its directory. */
export function busyboxStack(): string {
  const dir = join(STACK_CACHE, 'busybox');
  execFileSync(join(REPO, 'scripts/build-busybox-stack.sh'), [dir], { stdio: 'ignore' });
  return dir;
}

export function uniqueName(prefix: string): string {
  return `${prefix}${randomBytes(4).toString('hex')}`;
}

export async function tempDir(t: { teardown(fn: () => unknown): void }, prefix = 'slipway-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export function quietLogger(): Logger {
  return createRootLogger({ level: process.env.SLIPWAY_TEST_LOG ?? 'silent' });
}

/** Containers runc knows (its state dirs under /run/runc, which is what `runc list` reads):
 * `runc list` itself fails when a container another test removes vanishes mid-listing. */
export function runcContainers(prefix: string): string[] {
  let ids: string[];
  try {
    ids = readdirSync('/run/runc');
  } catch {
    return [];
  }
  return ids.filter((id) => id.startsWith(prefix));
}

export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m.startsWith(dir));
}

/** Child cgroups left under a test's cgroup parent, in any hierarchy. */
export function cgroupChildren(parent: string): string[] {
  const left: string[] = [];
  for (const dir of cgroupDirs(parent, detectCgroupVersion())) {
    if (!existsSync(dir)) continue;
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) left.push(join(dir, e.name));
  }
  return left;
}

/** Removes a test's (empty) cgroup parent in every hierarchy. */
export function removeCgroupParent(parent: string): void {
  for (const dir of cgroupDirs(parent, detectCgroupVersion())) {
    try { rmdirSync(dir); } catch { /* absent or not empty: reported by cgroupChildren */ }
  }
}

/** Processes whose command line mentions `needle` (conmon and dynos carry their state dir). */
export function processesMentioning(needle: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(needle) && Number(pid) !== process.pid) found.push(`${pid}: ${cmd.slice(0, 200)}`);
    } catch { /* exited */ }
  }
  return found;
}

export async function eventually<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last instanceof Error ? last.message : JSON.stringify(last)}` : ''}`);
}
