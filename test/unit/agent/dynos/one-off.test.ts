// How the words after `dyno run --` become the one-off's command (one-off.ts), checked by what
// a real POSIX shell makes of the command, as the dyno's `"$shell" -c COMMAND` does.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { isOneOffDyno, oneOffCommand } from '../../../../agent/dynos/one-off.js';

const run = (command: string) => execFileSync('/bin/sh', ['-c', command], { encoding: 'utf8', env: { HOME: '/app', PATH: '/usr/bin:/bin' } });

t.test('one word is a command string, as `heroku run "cmd"`: the shell parses it', async (t) => {
  t.equal(oneOffCommand(['echo $HOME; echo two']), 'echo $HOME; echo two');
  t.equal(run(oneOffCommand(['echo $HOME; echo two'])), '/app\ntwo\n');
});

t.test('several words are a command and its arguments, each passed on exactly', async (t) => {
  t.equal(run(oneOffCommand(['sh', '-c', 'x=a; echo ${#x}'])), '1\n', 'not `sh -c x=a; echo ${#x}`');
  t.equal(run(oneOffCommand(['sh', '-c', 'echo $HOME'])), '/app\n', 'as docker run IMAGE sh -c \'echo $HOME\'');
  t.equal(run(oneOffCommand(['printf', '%s|', 'a b', "it's", '$HOME', '', '*', 'line\nbreak'])), "a b|it's|$HOME||*|line\nbreak|", 'spaces, quotes, $, globs, empty words and newlines arrive intact');
});

t.test('no words is no command', async (t) => {
  t.throws(() => oneOffCommand([]), RangeError);
});

t.test('one-off dynos are the `run` process type', async (t) => {
  t.ok(isOneOffDyno({ type: 'run' }));
  t.notOk(isOneOffDyno({ type: 'web' }));
  t.notOk(isOneOffDyno({ type: 'worker' }));
});
