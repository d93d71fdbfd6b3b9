// Stacks are read-only root filesystems under `<stateDir>/stacks/<name>/`, installed by
// scripts/build-busybox-stack.sh (and, later, `slipway-agent stack import`).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { SlipwayError } from '../../shared/errors.js';

export class StackStore {
  constructor(private readonly dir: string) {}

  resolve(name: string): { dir: string; shell: string } {
    if (!/^[a-z0-9][a-z0-9._-]{0,62}$/.test(name)) throw new SlipwayError('STACK_NOT_FOUND', `invalid stack name ${JSON.stringify(name)}`);
    const dir = join(this.dir, name);
    if (!existsSync(join(dir, 'bin', 'sh'))) throw new SlipwayError('STACK_NOT_FOUND', `stack ${name} is not installed under ${this.dir}`);
    // Heroku runs commands with bash where the stack has it.
    const shell = existsSync(join(dir, 'bin', 'bash')) ? '/bin/bash' : '/bin/sh';
    return { dir, shell };
  }
}
