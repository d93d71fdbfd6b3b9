// Stacks are read-only root filesystems under `<stateDir>/stacks/<name>/`, installed by
// `slipway-agent stack import` (import.ts) or scripts/build-busybox-stack.sh.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { SlipwayError } from '../../shared/errors.js';
import { notExecutable } from './rootfs.js';

/** Written into every imported stack's root (import.ts): JSON {name, sha256, importedAt,
 * files, bytes}. scripts/build-busybox-stack.sh writes a plain-text one of its own. */
export const STACK_MARKER = '.slipway-stack';

/** Stack names: one path segment, usable in a Docker image reference once folded. */
export const STACK_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export class StackStore {
  constructor(private readonly dir: string) {}

  resolve(name: string): { dir: string; shell: string } {
    if (!STACK_NAME.test(name)) throw new SlipwayError('STACK_NOT_FOUND', `invalid stack name ${JSON.stringify(name)}`);
    const dir = join(this.dir, name);
    if (!existsSync(dir)) throw new SlipwayError('STACK_NOT_FOUND', `stack ${name} is not installed under ${this.dir}`);
    // Looked up as the dyno will see them: `bin/sh -> /bin/sh` is the stack's own /bin/sh
    // (a loop), not the host's.
    const noShell = notExecutable(dir, 'bin/sh');
    if (noShell) throw new SlipwayError('STACK_NOT_FOUND', `stack ${name} under ${this.dir} has no usable /bin/sh: ${noShell}`);
    // Heroku runs commands with bash where the stack has it.
    const shell = notExecutable(dir, 'bin/bash') === undefined ? '/bin/bash' : '/bin/sh';
    return { dir, shell };
  }
}
