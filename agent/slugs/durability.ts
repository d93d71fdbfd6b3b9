// Makes committed slugs durable without putting a disk flush on the dyno start path.
//
// A slug is usable the moment its staging dir is renamed into place (dynos read it from the
// page cache), but its file data reaches the disk only with the kernel's writeback, up to
// ~30 s later. An agent crash loses nothing (the page cache stays); a host crash or power
// loss inside that window can leave an entry whose files are empty or short, under metadata
// that says it is complete. So each entry's metadata records the boot it was written in and
// whether its data was flushed: after commit, the store flushes the file system in the
// background (`sync -f`, i.e. syncfs(2)) and then marks the entry durable. On start, an
// entry that was never marked durable and comes from an earlier boot is discarded and will
// be downloaded again; one from this boot (only the agent restarted) is flushed again.
import { readFileSync } from 'node:fs';
import { execBounded } from '../lib/exec.js';

/** A flush writes back what the host dirtied, typically one slug: 3 GB (the unpacked cap) at
 * 50 MB/s is 60 s; twice that and the entry stays non-durable (retried on the next start). */
export const FLUSH_TIMEOUT_MS = 120_000;

/** The kernel's id of this boot; changes on every reboot or crash. */
export function currentBootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    // No procfs (not Linux): every start counts as a new boot, the safe direction.
    return `unknown-${process.pid}-${Date.now()}`;
  }
}

/** syncfs(2) on the file system holding `dir`, bounded. Throws SlipwayError on failure. */
export async function flushFileSystem(dir: string): Promise<void> {
  await execBounded('sync', ['-f', dir], { timeoutMs: FLUSH_TIMEOUT_MS });
}

/** Whether an entry may be trusted after a start: durable, or written in this very boot. */
export function entrySurvives(meta: { durable?: unknown; bootId?: unknown }, bootId: string): boolean {
  return meta.durable === true || meta.bootId === bootId;
}
