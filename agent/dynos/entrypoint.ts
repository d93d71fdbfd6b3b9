// What runs inside the container: the process args and env of a dyno, Heroku style.
//
// Env: the app's config vars, then DYNO, PORT (web dynos only) and HOME=/app; the platform's
// values win over config vars of the same name. The command runs via `sh -c` (bash when the
// stack has it) in /app after sourcing /app/.profile.d/*.sh and /app/.profile, which see the
// config vars.
//
// The container's first shell (the entry shell) sources the profile, then runs the command in
// the foreground as its child and exits with the command's status. It stays the command's
// parent: under runc and Docker it is pid 1 of the dyno's pid namespace, where a signal
// without a handler is ignored, so an app without a SIGTERM handler that were pid 1 would
// never stop; under LXC it is pid 2, below init.lxc.
//
// The signal contract (Heroku: on stop, SIGTERM to every process of the dyno, then SIGKILL
// after the grace). The driver sends the stop's SIGTERM itself, once, to every process of the
// dyno, this shell included (agent/runtime/common.ts gracefulStop; each driver's signal()).
// This shell therefore passes nothing on: the app, which the driver reaches directly, would
// get a second SIGTERM, and an app whose second SIGTERM means "exit now" would die of it. Its
// trap only notes the stop; having a handler keeps the shell alive (SIGTERM's default action
// would end the dyno at once under LXC):
// - a SIGTERM while the profile is sourced, before the command runs: the command is not
//   started (nobody would signal it) and the dyno exits 143, as if it had died of it.
// - a SIGTERM while the command runs: a shell runs a trap only once its foreground command
//   has exited, and `$?` survives the trap, so the dyno's status is the command's own in
//   every shell. (The prelude used to run the command in the background and `wait` for it,
//   to pass the SIGTERM on at once; bash 5.2 loses the status of a child that exits while a
//   trap interrupts `wait`, and reported 255 for about two in three such stops.) Nor is the
//   command an asynchronous list, which shells start with SIGINT and SIGQUIT ignored.
// A SIGTERM in the microseconds between the fork of the command's shell and its exec is taken
// by the trap the fork inherited and lost with it: that dyno stops with SIGKILL at the grace.
//
// The command runs as `"$0" -c "$1"`. busybox ash and bash exec a simple command in place of
// that shell, so the app is this shell's child. dash does not, and a compound command
// (`./a & ./b; wait`) keeps its shell in any shell: that shell gets its own SIGTERM and, unless
// the command traps it, dies of it at once with 143, which is then the dyno's status. Under
// runc and Docker this shell, pid 1, then exits, and the kernel kills what is left of the pid
// namespace before the grace ends; under LXC init.lxc waits for the rest.
//
// The prelude's own variables: f and slipway_stopping are unset before the command starts (so
// config vars of those two names do not reach it). All of this is checked with busybox ash,
// dash and bash in test/unit/agent/dynos/entrypoint.test.ts.
import type { DynoSpec } from '../../shared/protocol.js';

const PRELUDE = [
  'unset slipway_stopping',
  "trap 'slipway_stopping=1' TERM",
  'for f in /app/.profile.d/*.sh; do [ -r "$f" ] && . "$f"; done',
  'unset f',
  '[ -r /app/.profile ] && . /app/.profile',
  '[ -z "$slipway_stopping" ] || exit 143',
  '"$0" -c "$1"',
  // Not the script's last command: a shell may exec its last command in its own place, which
  // would make the app pid 1.
  'exit "$?"',
].join('\n');

export const DEFAULT_PATH = '/app/bin:/app/.heroku/bin:/usr/local/bin:/usr/bin:/bin';

export function dynoArgs(command: string, shell: string): string[] {
  return [shell, '-c', PRELUDE, shell, command];
}

export function dynoEnv(spec: Pick<DynoSpec, 'env' | 'name'>, port: number | undefined): string[] {
  const env = new Map<string, string>([['PATH', DEFAULT_PATH]]);
  for (const [k, v] of Object.entries(spec.env)) env.set(k, v);
  env.set('DYNO', spec.name);
  if (port !== undefined) env.set('PORT', String(port));
  env.set('HOME', '/app');
  return [...env].map(([k, v]) => `${k}=${v}`);
}

/** Heroku routes HTTP only to the `web` process type; only it gets $PORT and a boot timeout. */
export function isWebDyno(spec: Pick<DynoSpec, 'type'>): boolean {
  return spec.type === 'web';
}
