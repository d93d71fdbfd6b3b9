// A stack as a local Docker image: `docker import` of a tar stream of the stack's directory,
// tagged `slipway-stack/<name>:<fingerprint>`. No registry is involved: the stack directory
// under <stateDir>/stacks is the source, as for runc and LXC.
//
// The fingerprint hashes the stack's tree (names, types, modes, owners, link targets and file
// contents), so the tag names exactly one root filesystem: a stack reinstalled with other
// contents gets a new tag, and two copies of the same stack share one image. It is computed
// once per stack directory per process (keyed by the directory's inode and mtime: stacks are
// installed by rename, never edited in place) and the engine is asked before importing.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { create as createTar } from 'tar';
import type Docker from 'dockerode';
import type { Logger } from '../../../shared/log.js';
import { SlipwayError } from '../../../shared/errors.js';
import { engineCall, engineLookup, IMPORT_TIMEOUT_MS, PING_TIMEOUT_MS } from './engine.js';

export const STACK_IMAGE_REPO = 'slipway-stack';
/** Bumped when the way a stack becomes an image changes, so old images are not reused. */
const FINGERPRINT_VERSION = 'slipway-stack-image v1';

/** `slipway-stack/<name>:<fingerprint>`; the name is folded into Docker's repository syntax. */
export function stackImageRef(stackName: string, fingerprint: string): string {
  const name = stackName.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '') || 'stack';
  return `${STACK_IMAGE_REPO}/${name}:${fingerprint}`;
}

/** 16 hex digits (64 bits) of a SHA-256 over the stack's tree, in a stable order. */
export async function stackFingerprint(dir: string): Promise<string> {
  const h = createHash('sha256').update(FINGERPRINT_VERSION);
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(join(dir, rel))).sort();
    for (const name of names) {
      const path = join(dir, rel, name);
      const st = await lstat(path);
      h.update(`\0${join(rel, name)}\0${st.mode}\0${st.uid}\0${st.gid}\0`);
      if (st.isSymbolicLink()) h.update(await readlink(path));
      else if (st.isFile()) {
        h.update(String(st.size));
        for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
      } else if (st.isDirectory()) await walk(join(rel, name));
    }
  };
  const root = await stat(dir);
  h.update(`${root.mode}\0${root.uid}\0${root.gid}`);
  await walk('');
  return h.digest('hex').slice(0, 16);
}

/**
 * The stack's own /etc/hosts as a host path, to bind over the empty file that the engine's init
 * layer puts above every image at /etc/hosts. The engine binds a hosts file of its own there,
 * except in a container that joins a pause container made without the engine's networking
 * (pause.ts); such a dyno then sees the stack's file, as runc and LXC dynos do. undefined when
 * the stack has none, or it is not a regular file inside the stack: the path is resolved as
 * the host sees it, so a symlink (of the file or of /etc) that leads out is never followed.
 */
export async function stackHostsFile(stackDir: string): Promise<string | undefined> {
  try {
    const root = await realpath(stackDir);
    const file = await realpath(join(root, 'etc', 'hosts'));
    return file.startsWith(`${root}/`) && (await stat(file)).isFile() ? file : undefined;
  } catch {
    return undefined;
  }
}

export class StackImages {
  private readonly known = new Map<string, Promise<string>>();

  constructor(private readonly docker: Docker, private readonly log: Logger) {}

  /** The image of the stack in `dir`, imported on first use; concurrent callers share one import. */
  async ensure(stackName: string, dir: string): Promise<string> {
    const st = await stat(dir).catch((err: unknown) => {
      throw new SlipwayError('STACK_NOT_FOUND', `stack ${stackName} has no directory at ${dir}`, { cause: err });
    });
    const key = `${stackName}\0${dir}\0${st.dev}\0${st.ino}\0${st.mtimeMs}`;
    let image = this.known.get(key);
    if (!image) {
      image = this.resolve(stackName, dir);
      this.known.set(key, image);
      // A failed import is retried by the next start, not remembered.
      image.catch(() => this.known.delete(key));
    }
    return image;
  }

  private async resolve(stackName: string, dir: string): Promise<string> {
    const ref = stackImageRef(stackName, await stackFingerprint(dir));
    if (await this.exists(ref)) return ref;
    const started = performance.now();
    await this.import(ref, stackName, dir);
    this.log.info({ stack: stackName, image: ref, ms: Math.round(performance.now() - started) }, 'stack imported into the Docker engine');
    return ref;
  }

  private async import(ref: string, stackName: string, dir: string): Promise<void> {
    const [repo, tag] = [ref.slice(0, ref.lastIndexOf(':')), ref.slice(ref.lastIndexOf(':') + 1)];
    // Owners and modes are the stack's own (portable: false): the dyno user's files stay its.
    const tar = Readable.from(createTar({ cwd: dir, portable: false }, ['.']));
    try {
      await engineCall(`import of stack ${stackName}`, IMPORT_TIMEOUT_MS, async (abortSignal) => {
        const progress = await this.docker.importImage(tar, {
          repo, tag, message: `slipway stack ${stackName}`,
          changes: [`LABEL slipway.stack=${stackName.replace(/[^A-Za-z0-9._-]/g, '_')} slipway.managed=true`],
          abortSignal,
        });
        await readProgress(progress);
      });
    } finally {
      tar.destroy();
    }
    if (!(await this.exists(ref))) throw new SlipwayError('RUNTIME_FAILED', `Docker import of stack ${stackName} finished but ${ref} is not there`);
  }

  private async exists(ref: string): Promise<boolean> {
    // dockerode's image inspect takes no AbortSignal: the race in engineCall is the bound.
    return (await engineLookup(`image inspect ${ref}`, PING_TIMEOUT_MS, () => this.docker.getImage(ref).inspect())) !== undefined;
  }
}

/** Reads the engine's JSON progress stream to its end; an `error` line fails the import. */
function readProgress(stream: NodeJS.ReadableStream): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let failure: string | undefined;
    const scan = (final: boolean) => {
      const lines = buf.split('\n');
      buf = final ? '' : lines.pop() ?? '';
      for (const line of lines) {
        if (!line.trim()) continue;
        try {
          const j = JSON.parse(line) as { error?: string; errorDetail?: { message?: string } };
          failure ??= j.errorDetail?.message ?? j.error;
        } catch { /* not JSON: ignore */ }
      }
    };
    stream.on('data', (b: Buffer) => { buf += b.toString('utf8'); scan(false); });
    stream.on('error', reject);
    stream.on('end', () => {
      scan(true);
      if (failure) reject(new SlipwayError('STACK_INVALID', `Docker refused the stack: ${failure.slice(0, 500)}`));
      else resolve();
    });
  });
}
