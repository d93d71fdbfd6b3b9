// What runs inside the container: the process args and env of a dyno, Heroku style.
//
// Env: the app's config vars, then DYNO, PORT (web dynos only) and HOME=/app; the platform's
// values win over config vars of the same name. The command runs via `sh -c` (bash when the
// stack has it) in /app after sourcing /app/.profile.d/*.sh and /app/.profile, which see the
// config vars.
//
// The container's first shell sources the profile, starts the command as its child and waits
// for it, exiting with the child's status. It is pid 1 under runc and Docker (pid 1 ignores
// SIGTERM unless it has a handler, so an app that were pid 1 would never see the graceful
// stop) and pid 2 under LXC, below init.lxc (where a SIGTERM would kill it at once and take
// the app down with the container before the app's own handler ran). So it traps SIGTERM,
// passes it on to the command, and waits again for the command's real exit status.
import type { DynoSpec } from '../../shared/protocol.js';

const PRELUDE = [
  'for f in /app/.profile.d/*.sh; do [ -r "$f" ] && . "$f"; done',
  'unset f',
  '[ -r /app/.profile ] && . /app/.profile',
  'trap \'kill -TERM "$child" 2>/dev/null\' TERM',
  '"$0" -c "$1" &',
  'child=$!',
  'wait "$child"; status=$?',
  // A trapped SIGTERM interrupts `wait` (128+15): wait once more for the command's own status.
  // 127 means the shell had already reported it (bash); the first status then stands. Checked
  // with busybox ash, dash and bash.
  'if [ "$status" -gt 128 ]; then wait "$child"; s=$?; [ "$s" -eq 127 ] || status=$s; fi',
  'exit "$status"',
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
