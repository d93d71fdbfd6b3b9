#!/usr/bin/env node
// slipway: the app developer's CLI, Heroku's `heroku` for this platform. It talks to the
// coordinator's API only (credentials.ts says where it is and which token to send); the
// commands are commands.ts's. Exit status: 0 on success, 2 on a usage error, 1 on any other
// failure, whose stderr line starts with its code (`APP_NOT_FOUND: no app "shop"`).
import { parseArgs } from 'node:util';
import { asSlipwayError, SlipwayError } from '../shared/errors.js';
import { ApiClient, ApiError } from './api-client.js';
import { appsCommand, drainsCommand, logsCommand, parseEnvArgs, psCommand, restartCommand, runAttachedCommand, runDetachedCommand, scaleCommand, type CommandContext } from './commands.js';
import { checkUrl, resolveCredentials, writeCredentials } from './credentials.js';
import { readFileSync } from 'node:fs';

const USAGE = `Usage: slipway COMMAND [options]

Commands:
  apps                              the apps and their formations
  ps -a APP                         the app's dynos
  scale -a APP TYPE=N[:SIZE]...     scale process types (web=3 worker=1:standard-2x)
  restart -a APP [TYPE | DYNO]      replace every dyno, a type's, or one (web.1) with a fresh
                                    one (the new one is up before the old one stops)
  logs -a APP [--tail] [--dyno web.1 | --dyno web] [--source app|slipway] [-n LINES]
                                    the app's log lines (the last 100, at most 1500); --tail
                                    follows new ones
  run -a APP [-t | --no-tty] [--size SIZE] [--env K=V]... -- COMMAND [ARG...]
                                    a one-off dyno run.N of the app's release, attached: its
                                    stdin, stdout and stderr are this terminal's, and its exit
                                    code is slipway's; a terminal (-t) when stdin and stdout
                                    are terminals unless --no-tty; Ctrl-C stops it (SIGTERM,
                                    10 s, SIGKILL); one word after -- is a command string for
                                    the shell, several are passed on as they are
  run -a APP --detach [--size SIZE] [--env K=V]... -- COMMAND [ARG...]
                                    the same in the background: its output goes to the app's
                                    logs
  drains -a APP                     the app's log drains, with what each delivered and dropped
  drains:add -a APP URL             a drain: https://[user:password@]host/path (Logplex
                                    batches) or syslog+tls://host[:6514] (RFC 5424 over TLS)
  drains:remove -a APP ID|TOKEN|URL
  login --api URL [--token-file PATH]
                                    check the token against the API and keep both in
                                    ~/.config/slipway/credentials.json (0600); without
                                    --token-file the token is read from stdin

Options of every command:
  -a, --app APP          the app
  --json                 print the API's JSON (logs: one object per line)
  --api URL              the coordinator's API (else SLIPWAY_API_URL, the credentials
                         file, http://127.0.0.1:7700)
  --token-file PATH      a file holding the API token (else SLIPWAY_API_TOKEN, the
                         credentials file)
  --ca-file PATH         the CA bundle of an https:// API (else SLIPWAY_API_CA_FILE)
  -h, --help             print this

Exit status: 0 on success, 2 on a usage error, 1 on any other failure (stderr: CODE: message).
`;

const OPTIONS = {
  app: { type: 'string', short: 'a' },
  json: { type: 'boolean' },
  api: { type: 'string' },
  'token-file': { type: 'string' },
  'ca-file': { type: 'string' },
  // -t is --tail for logs and --tty for run (heroku logs -t; docker run -t).
  tail: { type: 'boolean', short: 't' },
  tty: { type: 'boolean' },
  'no-tty': { type: 'boolean' },
  dyno: { type: 'string', short: 'd' },
  source: { type: 'string', short: 's' },
  num: { type: 'string', short: 'n' },
  detach: { type: 'boolean' },
  size: { type: 'string' },
  env: { type: 'string', multiple: true, short: 'e' },
  help: { type: 'boolean', short: 'h' },
} as const;

const NEEDS_APP = new Set(['ps', 'scale', 'restart', 'logs', 'run', 'drains', 'drains:add', 'drains:remove']);

async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    throw new SlipwayError('CONFIG_INVALID', `${(err as Error).message}\n\n${USAGE}`, { cause: err });
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (values.help || command === undefined || command === 'help') {
    process.stdout.write(USAGE);
    return command === undefined && !values.help ? 2 : 0;
  }
  if (command === 'login') return login(values, env);
  if (!['apps', ...NEEDS_APP].includes(command)) throw new SlipwayError('CONFIG_INVALID', `unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
  const app = values.app ?? env.SLIPWAY_APP;
  if (NEEDS_APP.has(command) && (app === undefined || app === '')) throw new SlipwayError('CONFIG_INVALID', `${command} needs the app: -a APP (or SLIPWAY_APP)`);
  const api = new ApiClient(resolveCredentials(values, env));
  const json = values.json ?? false;
  const ctx: CommandContext = { api, app: app ?? '', json, out: process.stdout };
  switch (command) {
    case 'apps':
      return appsCommand(ctx);
    case 'ps':
      return psCommand(ctx);
    case 'scale':
      return scaleCommand(ctx, rest);
    case 'run': {
      const run = { ...(values.size !== undefined ? { size: values.size } : {}), env: parseEnvArgs(values.env ?? []) };
      if (values.detach) return runDetachedCommand(ctx, rest, run);
      if ((values.tty || values.tail) && values['no-tty']) throw new SlipwayError('CONFIG_INVALID', 'run takes -t or --no-tty, not both');
      // As heroku run: a terminal when asked, or when this one is a terminal both ways.
      const tty = values.tty === true || values.tail === true || (values['no-tty'] !== true && process.stdin.isTTY === true && process.stdout.isTTY === true);
      if (tty && process.stdin.isTTY !== true) throw new SlipwayError('CONFIG_INVALID', 'run -t needs stdin to be a terminal (use --no-tty to pipe into the dyno)');
      const creds = api.credentials;
      return runAttachedCommand(ctx, rest, {
        ...run, err: process.stderr, ...(creds.ca !== undefined ? { ca: creds.ca } : {}),
        terminal: { tty, stdin: process.stdin, stdout: process.stdout, stderr: process.stderr },
      });
    }
    case 'drains':
    case 'drains:add':
    case 'drains:remove':
      if (rest.length > 1) throw new SlipwayError('CONFIG_INVALID', `${command} takes at most one argument`);
      return drainsCommand(ctx, command === 'drains' ? 'list' : command === 'drains:add' ? 'add' : 'remove', rest[0]);
    case 'restart':
      if (rest.length > 1) throw new SlipwayError('CONFIG_INVALID', 'restart takes at most one TYPE or DYNO');
      return restartCommand(ctx, rest[0]);
    default: {
      const lines = values.num === undefined ? 100 : Number(values.num);
      if (!Number.isInteger(lines) || lines < 0 || lines > 1500) throw new SlipwayError('CONFIG_INVALID', `-n wants a number of lines from 0 to 1500, got ${JSON.stringify(values.num)}`);
      if (values.source !== undefined && values.source !== 'app' && values.source !== 'slipway') throw new SlipwayError('CONFIG_INVALID', `--source is app or slipway, got ${JSON.stringify(values.source)}`);
      return logsCommand(ctx, { lines, tail: values.tail ?? false, ...(values.dyno !== undefined ? { dyno: values.dyno } : {}), ...(values.source !== undefined ? { source: values.source } : {}) });
    }
  }
}

async function login(values: { api?: string | undefined; 'token-file'?: string | undefined; 'ca-file'?: string | undefined; json?: boolean | undefined }, env: NodeJS.ProcessEnv): Promise<number> {
  if (values.api === undefined) throw new SlipwayError('CONFIG_INVALID', 'login needs --api URL');
  checkUrl(values.api);
  const token = (values['token-file'] !== undefined ? readFileSync(values['token-file'], 'utf8') : readFileSync(0, 'utf8')).trim();
  if (token === '') throw new SlipwayError('CONFIG_INVALID', 'login read an empty token');
  const api = new ApiClient({ apiUrl: values.api, token, ...(values['ca-file'] !== undefined ? { ca: readFileSync(values['ca-file'], 'utf8') } : {}) });
  // A token that the API refuses is not kept.
  const apps = await api.json<unknown[]>('GET', '/apps');
  const file = writeCredentials(env, { apiUrl: values.api, token, ...(values['ca-file'] !== undefined ? { caFile: values['ca-file'] } : {}) });
  process.stdout.write(values.json ? `${JSON.stringify({ apiUrl: values.api, credentials: file, apps: apps.length })}\n` : `Logged in to ${values.api} (${apps.length} apps); credentials in ${file}\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    const code = err instanceof ApiError ? err.code : asSlipwayError(err).code;
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`${code}: ${message}\n`);
    process.exitCode = code === 'CONFIG_INVALID' ? 2 : 1;
  },
);
