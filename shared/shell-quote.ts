// Shell words: quoting one, and how the words after `--` of `slipway run` and `slipway-agent
// dyno run` become a one-off dyno's command, which the stack's shell runs
// (agent/dynos/entrypoint.ts: `"$shell" -c COMMAND`).
//
//   one word      a command string, as in `heroku run "rake db:migrate && echo done"`: the
//                 shell parses it (`run -- 'echo $HOME'` prints /app)
//   several words a command and its arguments, each shell-quoted and so passed on exactly:
//                 `run -- sh -c 'echo $HOME'` runs sh with the two arguments -c and
//                 `echo $HOME`, as `docker run IMAGE sh -c 'echo $HOME'` does. Joining them
//                 with spaces would run `sh -c echo $HOME` instead.

/** One POSIX shell word holding exactly `s`: single quotes, each quote inside written as '\''. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The command string of `run -- WORD...` (at least one word). */
export function oneOffCommand(words: readonly string[]): string {
  if (words.length === 0) throw new RangeError('a one-off dyno needs a command');
  return words.length === 1 ? words[0]! : words.map(shellQuote).join(' ');
}
