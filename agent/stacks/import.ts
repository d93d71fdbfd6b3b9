// `stack import`: an operator's rootfs tarball becomes `<stacksDir>/<name>/`.
//
// The archive is extracted into a staging dir beside the target (same file system), checked
// (bin/sh), completed (the mount points runtimes need, the `.slipway-stack` marker), flushed
// to disk and renamed into place: a stack directory is either absent or complete, and a failed
// import leaves nothing. A stack is replaced only when asked (`force`) and never while a dyno's
// overlay uses it as a lower layer.
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { SlipwayError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import { flushFileSystem } from '../slugs/durability.js';
import { extractStack } from './extract.js';
import { stackMounts } from './in-use.js';
import { notExecutable } from './rootfs.js';
import { STACK_MARKER, STACK_NAME, StackStore } from './stacks.js';

/** Directories every runtime mounts over or runs in, with the mode each gets when the image
 * lacks it. tmp is world-writable and sticky whatever the image says. */
export const MOUNT_POINTS: readonly { name: string; mode: number }[] = [
  { name: 'proc', mode: 0o555 },
  { name: 'sys', mode: 0o555 },
  { name: 'dev', mode: 0o755 },
  { name: 'tmp', mode: 0o1777 },
  { name: 'app', mode: 0o755 },
];

export interface StackMarker {
  name: string;
  /** SHA-256 of the archive file as given (compressed or not). */
  sha256: string;
  importedAt: string;
  files: number;
  bytes: number;
}

export interface ImportStackOptions {
  name: string;
  archive: string;
  stacksDir: string;
  force?: boolean;
  log: Logger;
  timeoutMs?: number;
  /** Stops the import and removes what it wrote (the CLI aborts on SIGINT and SIGTERM). */
  signal?: AbortSignal;
  /** The mount table to check for dynos using the stack (tests). */
  mountsFile?: string;
}

export interface ImportedStack extends StackMarker {
  path: string;
  /** Device and FIFO entries of the archive that were not created. */
  skipped: number;
  replaced: boolean;
}

function isAbsent(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'ENOENT';
}

async function exists(path: string): Promise<boolean> {
  return fsp.lstat(path).then(() => true, (err: unknown) => {
    if (isAbsent(err)) return false;
    throw err;
  });
}

export async function importStack(opts: ImportStackOptions): Promise<ImportedStack> {
  const { name, stacksDir, log } = opts;
  if (!STACK_NAME.test(name)) throw new SlipwayError('CONFIG_INVALID', `invalid stack name ${JSON.stringify(name)} (want ${STACK_NAME.source})`);
  const target = join(stacksDir, name);
  // Refused before any byte is read; checked again right before the rename.
  await refuseReplacement(opts, target);

  await fsp.mkdir(stacksDir, { recursive: true, mode: 0o755 });
  const staging = await fsp.mkdtemp(join(stacksDir, `.import-${name}-`));
  let marker: StackMarker;
  let skipped: number;
  try {
    const extracted = await extractStack({ archive: opts.archive, stagingDir: staging, log, timeoutMs: opts.timeoutMs, signal: opts.signal });
    skipped = extracted.skipped;
    const noShell = notExecutable(staging, 'bin/sh');
    if (noShell) throw new SlipwayError('STACK_INVALID', `stack archive has no usable bin/sh: ${noShell}`);
    await completeRootfs(staging);
    marker = { name, sha256: extracted.sha256, importedAt: new Date().toISOString(), files: extracted.files, bytes: extracted.bytes };
    await writeMarker(staging, marker);
    // On disk before it is visible under its name, so a host crash cannot leave a stack
    // directory with empty files behind a complete-looking marker.
    await flushFileSystem(staging);
    await refuseReplacement(opts, target);
  } catch (err) {
    await fsp.rm(staging, { recursive: true, force: true });
    throw err;
  }
  const replaced = await swapIntoPlace(staging, target, opts);
  log.info({ stack: name, sha256: marker.sha256, files: marker.files, bytes: marker.bytes, skipped, replaced }, 'stack imported');
  return { ...marker, path: target, skipped, replaced };
}

/** Throws when `target` may not be replaced: it exists without `force`, or a dyno uses it. */
async function refuseReplacement(opts: ImportStackOptions, target: string): Promise<void> {
  if (!(await exists(target))) return;
  if (!opts.force) throw new SlipwayError('STACK_EXISTS', `stack ${opts.name} is already installed at ${target}; --force replaces it`);
  const users = await stackMounts(opts.stacksDir, opts.name, opts.mountsFile);
  if (users.length > 0) {
    throw new SlipwayError('STACK_IN_USE', `stack ${opts.name} is in use by ${users.length} dyno overlay mount(s) (${users.slice(0, 3).join(', ')}); stop those dynos before replacing it`);
  }
}

/** Mount points, tmp's mode and the root's owner and mode. An image whose mount point is a
 * file or a symlink is refused: runtimes would mount onto whatever it points at. */
async function completeRootfs(root: string): Promise<void> {
  for (const { name, mode } of MOUNT_POINTS) {
    const path = join(root, name);
    const st = await fsp.lstat(path).catch((err: unknown) => {
      if (isAbsent(err)) return undefined;
      throw err;
    });
    if (st === undefined) {
      await fsp.mkdir(path);
      await fsp.chown(path, 0, 0);
      await fsp.chmod(path, mode); // after mkdir, which the umask would trim
    } else if (!st.isDirectory()) {
      throw new SlipwayError('STACK_INVALID', `stack archive has /${name} as a ${st.isSymbolicLink() ? 'symlink' : 'non-directory'}; it must be a directory`);
    } else if (name === 'tmp') {
      await fsp.chmod(path, mode);
    }
  }
  await fsp.chown(root, 0, 0);
  await fsp.chmod(root, 0o755);
}

/** The marker replaces whatever the archive had at that name (the busybox build script
 * writes its own); unlinked first, so a symlink there cannot redirect the write. */
async function writeMarker(root: string, marker: StackMarker): Promise<void> {
  const path = join(root, STACK_MARKER);
  const st = await fsp.lstat(path).catch(() => undefined);
  if (st?.isDirectory()) throw new SlipwayError('STACK_INVALID', `stack archive has a directory at /${STACK_MARKER}`);
  if (st) await fsp.unlink(path);
  await fsp.writeFile(path, JSON.stringify(marker) + '\n', { flag: 'wx', mode: 0o644 });
}

/**
 * Renames the staging dir to `target`. An existing stack is renamed aside first and removed
 * after; the name is absent between the two renames (no exchanging rename in node), which a
 * dyno starting at that instant sees as STACK_NOT_FOUND. If a dyno mounted the old tree in
 * between, the old tree is kept (named in the log) rather than deleted under it.
 */
async function swapIntoPlace(staging: string, target: string, opts: ImportStackOptions): Promise<boolean> {
  const aside = await exists(target) ? join(opts.stacksDir, `.replaced-${opts.name}-${randomBytes(4).toString('hex')}`) : undefined;
  try {
    if (aside) await fsp.rename(target, aside);
    await fsp.rename(staging, target);
  } catch (err) {
    if (aside) await fsp.rename(aside, target).catch(() => undefined);
    await fsp.rm(staging, { recursive: true, force: true });
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') {
      throw new SlipwayError('STACK_EXISTS', `stack ${opts.name} was installed by another import meanwhile`, { cause: err });
    }
    throw new SlipwayError('INTERNAL', `cannot move the stack into ${target}: ${(err as Error).message}`, { cause: err });
  }
  await fsyncDir(opts.stacksDir);
  if (!aside) return false;
  if ((await stackMounts(opts.stacksDir, opts.name, opts.mountsFile)).length > 0) {
    opts.log.warn({ stack: opts.name, kept: aside }, 'a dyno mounted the stack while it was replaced: the old tree is kept');
  } else {
    await fsp.rm(aside, { recursive: true, force: true });
  }
  return true;
}

async function fsyncDir(dir: string): Promise<void> {
  const fd = await fsp.open(dir, 'r');
  try {
    await fd.sync();
  } finally {
    await fd.close();
  }
}

export interface ListedStack {
  name: string;
  path: string;
  bytes: number;
  files: number;
  /** null for a stack that was not imported (built in place by a script). */
  importedAt: string | null;
  sha256: string | null;
  /** The shell dynos run commands with; null when the stack has no usable /bin/sh. */
  shell: string | null;
}

/** Every stack under `stacksDir` (staging and replaced trees, dot-named, are not stacks). */
export async function listStacks(stacksDir: string): Promise<ListedStack[]> {
  const entries = await fsp.readdir(stacksDir, { withFileTypes: true }).catch((err: unknown) => {
    if (isAbsent(err)) return [];
    throw err;
  });
  const store = new StackStore(stacksDir);
  const out: ListedStack[] = [];
  for (const e of entries.filter((d) => d.isDirectory() && !d.name.startsWith('.')).sort((a, b) => a.name.localeCompare(b.name))) {
    const path = join(stacksDir, e.name);
    const marker = await readMarker(path);
    const counted = marker ?? (await countFiles(path));
    let shell: string | null = null;
    try {
      shell = store.resolve(e.name).shell;
    } catch { /* listed, but unusable */ }
    out.push({
      name: e.name, path, bytes: counted.bytes, files: counted.files,
      importedAt: marker?.importedAt ?? null, sha256: marker?.sha256 ?? null, shell,
    });
  }
  return out;
}

async function readMarker(dir: string): Promise<StackMarker | undefined> {
  try {
    const m = JSON.parse(await fsp.readFile(join(dir, STACK_MARKER), 'utf8')) as Partial<StackMarker>;
    if (typeof m.sha256 === 'string' && typeof m.importedAt === 'string' && typeof m.files === 'number' && typeof m.bytes === 'number') {
      return m as StackMarker;
    }
  } catch { /* absent, or a script's plain-text marker */ }
  return undefined;
}

/** Regular files and their bytes, for a stack without an import marker. */
async function countFiles(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  const walk = async (d: string): Promise<void> => {
    for (const e of await fsp.readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        files += 1;
        bytes += (await fsp.lstat(p)).size;
      }
    }
  };
  await walk(dir);
  return { files, bytes };
}
