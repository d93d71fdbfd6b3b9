// The dyno's root filesystem: overlayfs with the slug (which holds `app/`) above the stack
// as read-only lower layers and a per-dyno upper dir. Mounting never copies the slug, so
// start time does not grow with slug size.
import { mkdir } from 'node:fs/promises';
import { execBounded } from '../lib/exec.js';
import { SlipwayError } from '../../shared/errors.js';
import { shellQuote } from '../../shared/shell-quote.js';

/** mount(8) of an overlay is a single syscall; 10 s only trips on a wedged filesystem. */
export const MOUNT_TIMEOUT_MS = 10_000;

export interface OverlayPaths { lower: string[]; upper: string; work: string; target: string }

export function overlayOptions(p: OverlayPaths): string {
  for (const dir of [...p.lower, p.upper, p.work]) {
    // ':' separates lower dirs and ',' separates options: such paths cannot be expressed.
    if (/[:,\\]/.test(dir)) throw new SlipwayError('CONFIG_INVALID', `overlay path may not contain ':', ',' or '\\': ${dir}`);
  }
  return `lowerdir=${p.lower.join(':')},upperdir=${p.upper},workdir=${p.work}`;
}

/** mount(8)'s arguments for the overlay. */
export function overlayMountArgs(p: OverlayPaths): string[] {
  return ['-t', 'overlay', 'overlay', '-o', overlayOptions(p), p.target];
}

/** Creates the upper, work and target dirs; the mount itself is then `mount ARGS`. */
export async function prepareOverlay(p: OverlayPaths): Promise<void> {
  await Promise.all([p.upper, p.work, p.target].map((d) => mkdir(d, { recursive: true })));
}

export async function mountOverlay(p: OverlayPaths): Promise<void> {
  const args = overlayMountArgs(p);
  await prepareOverlay(p);
  await execBounded('mount', args, { timeoutMs: MOUNT_TIMEOUT_MS });
}

/** A shell line that mounts the overlay and exits 1 (with mount's own message on stderr) if it
 * cannot. The runc and LXC drivers put it in the runtime shim conmon runs, so that the mount
 * costs a fork of a small shell instead of a spawn from the agent (~3 ms of node's
 * child_process on the start path, scripts/bench/start.sh); conmon's create bound covers it. */
export function overlayMountLine(p: OverlayPaths): string {
  return `mount ${overlayMountArgs(p).map(shellQuote).join(' ')} || exit 1`;
}

/** Unmounts if mounted; a target that is not a mount point is fine. */
export async function unmountOverlay(target: string): Promise<void> {
  const r = await execBounded('umount', [target], { timeoutMs: MOUNT_TIMEOUT_MS, allowFailure: true });
  if (r.code !== 0 && !/not mounted|no mount point|not found|No such file/i.test(r.stderr)) {
    // A busy mount is detached lazily so that cleanup always finishes; the kernel frees it
    // when the last process lets go.
    await execBounded('umount', ['-l', target], { timeoutMs: MOUNT_TIMEOUT_MS, allowFailure: true });
  }
}
