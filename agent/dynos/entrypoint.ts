// What runs inside the container: the process args and env of a dyno, Heroku style.
//
// Env: the app's config vars, then DYNO, PORT (web dynos only) and HOME=/app; the platform's
// values win over config vars of the same name. The command runs via `sh -c` (bash when the
// stack has it) in /app after sourcing /app/.profile.d/*.sh and /app/.profile, which see the
// config vars.
//
// Pid 1 of the container is a small shell that sources the profile, starts the command as
// its child and waits for it. Pid 1 of a pid namespace ignores SIGTERM unless it installs a
// handler, so an app that is itself pid 1 would never see the graceful stop; as a child it
// gets SIGTERM (runc kill --all) with its own default disposition, and pid 1 exits with the
// child's status right after.
import type { DynoSpec } from '../../shared/protocol.js';

const PRELUDE = [
  'for f in /app/.profile.d/*.sh; do [ -r "$f" ] && . "$f"; done',
  'unset f',
  '[ -r /app/.profile ] && . /app/.profile',
  '"$0" -c "$1" &',
  'wait $!',
].join('\n');

export const DEFAULT_PATH = '/app/bin:/app/.heroku/bin:/usr/local/bin:/usr/bin:/bin';

export function dynoArgs(command: string, shell: string): string[] {
  return [shell, '-c', PRELUDE, shell, command];
}

export function dynoEnv(spec: DynoSpec, port: number | undefined): string[] {
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
