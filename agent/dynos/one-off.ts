// Heroku's one-off dynos (`heroku run`, process type `run`, named run.N): never restarted and
// never cycled. And how the words after `--` of `slipway-agent dyno run` become the one-off's
// command, which the stack's shell runs (entrypoint.ts): `"$shell" -c COMMAND`.
//
//   one word      a command string, as in `heroku run "rake db:migrate && echo done"`: the
//                 shell parses it (`dyno run -- 'echo $HOME'` prints /app)
//   several words a command and its arguments, each shell-quoted (agent/lib/shell-quote.ts)
//                 and so passed on exactly: `dyno run -- sh -c 'echo $HOME'` runs sh with the
//                 two arguments -c and `echo $HOME`, as `docker run IMAGE sh -c 'echo $HOME'`
//                 does. Joining them with spaces would run `sh -c echo $HOME` instead.
import type { DynoSpec } from '../../shared/protocol.js';
import { shellQuote } from '../lib/shell-quote.js';

export function isOneOffDyno(spec: Pick<DynoSpec, 'type'>): boolean {
  return spec.type === 'run';
}

/** The command string of `dyno run -- WORD...` (at least one word). */
export function oneOffCommand(words: readonly string[]): string {
  if (words.length === 0) throw new RangeError('a one-off dyno needs a command');
  return words.length === 1 ? words[0]! : words.map(shellQuote).join(' ');
}
