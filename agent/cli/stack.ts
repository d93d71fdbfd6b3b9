// `slipway-agent stack import|ls`: stacks from an operator's shell. Same state dir and store
// code as the agent; safe beside a running agent (a stack a dyno has mounted is never
// replaced; see agent/stacks/in-use.ts).
import { join } from 'node:path';
import { loadCommandConfig, type CommandFlags } from '../config/flags.js';
import { optionLines } from '../config/help.js';
import { createRootLogger } from '../../shared/log.js';
import { importStack, listStacks } from '../stacks/import.js';
import { SlipwayError } from '../../shared/errors.js';

const STACK_FLAGS = {
  keys: ['stateDir'],
  own: { force: { type: 'boolean' } },
  positionals: true,
} as const satisfies CommandFlags;

export const STACK_USAGE = `Usage: slipway-agent stack <import|ls> [options]

  import NAME ARCHIVE        install a root filesystem tarball (.tar or .tar.gz; - or a FIFO
                             for a stream) as stack NAME under <state-dir>/stacks; prints
                             {name, path, files, bytes} as one JSON line
         --force             replace an installed stack of that name (refused while a dyno
                             uses it)
  ls                         one JSON line per stack
                             {name, path, bytes, files, importedAt, sha256, shell}

Options:
${optionLines(STACK_FLAGS, 'stateDir')}
Device nodes and FIFOs in the archive are skipped; the archive must have bin/sh.
Logs: off; SLIPWAY_LOG_LEVEL=info prints pino logs on stderr.
On failure: exit 1, stderr starts with the error code (e.g. STACK_INVALID: ...).
`;

/** `out` receives each JSON line (the CLI's stdout). */
export async function stackCommand(argv: string[], out: (line: string) => void = (l) => process.stdout.write(l)): Promise<void> {
  const { config, values, positionals } = loadCommandConfig(argv, STACK_FLAGS);
  const [sub, ...rest] = positionals;
  const stacksDir = join(config.stateDir, 'stacks');
  const log = createRootLogger({ level: process.env.SLIPWAY_LOG_LEVEL ?? 'silent', destination: process.stderr }).child({ component: 'stacks' });
  const print = (v: unknown) => out(JSON.stringify(v) + '\n');
  switch (sub) {
    case 'import': {
      const [name, archive, extra] = rest;
      if (!name || !archive || extra !== undefined) throw new SlipwayError('CONFIG_INVALID', `stack import needs NAME and ARCHIVE\n${STACK_USAGE}`);
      // Ctrl-C or a service stop mid-import: stop GNU tar and remove the staging dir before
      // exiting (main.ts then prints the error and exits 1).
      const abort = new AbortController();
      const stop = () => abort.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        const s = await importStack({ name, archive: archive === '-' ? '/dev/stdin' : archive, stacksDir, force: values.force === true, log, signal: abort.signal });
        print({ name: s.name, path: s.path, files: s.files, bytes: s.bytes });
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
      return;
    }
    case 'ls':
      for (const s of await listStacks(stacksDir)) print(s);
      return;
    default:
      throw new SlipwayError('CONFIG_INVALID', `unknown stack command ${JSON.stringify(sub ?? '')}\n${STACK_USAGE}`);
  }
}
