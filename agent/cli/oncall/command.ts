// The on-call commands' entry (`slipway-agent status|dynos|logs|why|doctor`, agent/main.ts):
// loads the config the way the other operator commands do (--config, then the flags, then the
// defaults), runs one command, and turns a failure into `slipway-agent: CODE: message` on stderr
// and a non-zero exit (2 for a usage error, 1 otherwise).
import { join } from 'node:path';
import { asSlipwayError, SlipwayError } from '../../../shared/errors.js';
import { LOGS_FLAGS, STATUS_FLAGS, WHY_FLAGS } from '../../config/commands.js';
import { loadCommandConfig } from '../../config/flags.js';
import type { Defaulted } from '../../config/schema.js';
import { DiagnosticsClient } from './client.js';
import { resolveDyno, type NamedDyno } from './dyno-ref.js';
import { followLogs } from './logs.js';
import { renderDynos, renderStatus } from './status.js';
import { renderDecisions, renderExits } from './why.js';
import { MAX_DECISIONS, MAX_LOG_LINES } from '../../diagnostics/server.js';

export const ONCALL_COMMANDS = ['status', 'dynos', 'logs', 'why', 'doctor'] as const;
export type OncallCommand = (typeof ONCALL_COMMANDS)[number];

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
}

const STDIO: Io = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

/** Runs `command`; resolves with the process's exit code (never throws). */
export async function oncallCommand(command: OncallCommand, argv: string[], io: Io = STDIO): Promise<number> {
  try {
    return await run(command, argv, io);
  } catch (err) {
    const e = asSlipwayError(err);
    io.err(`slipway-agent: ${e.code}: ${e.message}\n`);
    return e.code === 'CONFIG_INVALID' ? 2 : 1;
  }
}

function clientFor(config: Defaulted): DiagnosticsClient {
  return new DiagnosticsClient({ listen: config.diagnosticsListen, tokenFile: config.diagnosticsTokenFile ?? join(config.stateDir, 'agent', 'diagnostics.token') });
}

function count(text: string | undefined, flag: string, fallback: number, max: number): number {
  if (text === undefined) return fallback;
  if (!/^[1-9][0-9]*$/.test(text)) throw new SlipwayError('CONFIG_INVALID', `--${flag} ${JSON.stringify(text)}: expected a positive integer`);
  return Math.min(max, Number(text));
}

function oneOperand(positionals: string[], command: string, required: boolean): string | undefined {
  if (positionals.length > 1 || (required && positionals.length === 0)) {
    throw new SlipwayError('CONFIG_INVALID', `${command} takes ${required ? 'one' : 'at most one'} DYNO (web.1, APP/web.1 or a dyno id)`);
  }
  return positionals[0];
}

const print = (io: Io, json: boolean, value: unknown, human: (v: unknown) => string) => io.out(json ? JSON.stringify(value, null, 2) + '\n' : human(value));

async function run(command: OncallCommand, argv: string[], io: Io): Promise<number> {
  if (command === 'doctor') {
    const { doctorCommand } = await import('./doctor.js');
    return doctorCommand(argv, io);
  }
  if (command === 'status' || command === 'dynos') {
    const { config, values } = loadCommandConfig(argv, STATUS_FLAGS);
    const client = clientFor(config);
    if (command === 'status') print(io, values.json === true, await client.get('/v1/status'), (v) => renderStatus(v));
    else print(io, values.json === true, await client.get('/v1/dynos'), (v) => renderDynos(v));
    return 0;
  }
  if (command === 'logs') {
    // -f and -n are the short forms people type (tail's); the parser knows the long ones.
    const { config, values, positionals } = loadCommandConfig(argv.map((a) => (a === '-f' ? '--follow' : a === '-n' ? '--lines' : a)), LOGS_FLAGS);
    const ref = oneOperand(positionals, 'logs', true)!;
    const lines = count(values.lines, 'lines', 100, MAX_LOG_LINES);
    const client = clientFor(config);
    const dyno = resolveDyno(await client.get<NamedDyno[]>('/v1/dynos'), ref);
    if (values.follow === true) {
      await followLogs(client, dyno.id, lines, values.json === true, io);
      return 0;
    }
    const answer = await client.get<{ lines: string[] }>(`/v1/dynos/${encodeURIComponent(dyno.id)}/logs?lines=${lines}`);
    print(io, values.json === true, answer, () => answer.lines.map((l) => l + '\n').join(''));
    return 0;
  }
  // why [DYNO]
  const { config, values, positionals } = loadCommandConfig(argv, WHY_FLAGS);
  const ref = oneOperand(positionals, 'why', false);
  const limit = count(values.limit, 'limit', 50, MAX_DECISIONS);
  const client = clientFor(config);
  if (ref === undefined) {
    const events = await optional(client.get<{ decisions: unknown[] }>(`/v1/events?limit=${limit}`));
    print(io, values.json === true, events ?? { decisions: [] }, (v) => renderDecisions((v as { decisions: unknown[] }).decisions, Date.now(), true));
    return 0;
  }
  // A dyno on the host is asked for by its id; one that is gone (its decisions and exits are
  // still kept) by what was typed, which the endpoint matches against ids and names.
  const live = await client.get<NamedDyno[]>('/v1/dynos');
  let key = ref;
  try {
    key = resolveDyno(live, ref).id;
  } catch (err) {
    if (!(err instanceof SlipwayError && err.code === 'DYNO_NOT_FOUND')) throw err;
  }
  const q = encodeURIComponent(key);
  const [events, exits] = await Promise.all([
    optional(client.get<{ decisions: unknown[] }>(`/v1/events?dyno=${q}&limit=${limit}`)),
    optional(client.get<{ exits: unknown[] }>(`/v1/dynos/${q}/exits`), 'DYNO_NOT_FOUND'),
  ]);
  const decisions = events?.decisions ?? [];
  if (key === ref && !live.some((d) => d.id === ref) && decisions.length === 0 && exits === undefined) {
    throw new SlipwayError('DYNO_NOT_FOUND', `no dyno ${ref} on this host, and no decision or exit recorded about one (slipway-agent dynos lists them)`);
  }
  print(io, values.json === true, { decisions, exits: exits?.exits ?? [] }, () =>
    `Decisions about ${ref}:\n${renderDecisions(decisions)}\nLast exits of ${ref}:\n${renderExits(exits?.exits ?? [])}`);
  return 0;
}

/** An answer, or undefined when the agent has no such route (an agent without the decision log
 * or the exit records: HTTP_NOT_FOUND) or answers one of `absent`. */
async function optional<T>(p: Promise<T>, ...absent: string[]): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if (err instanceof SlipwayError && (err.code === 'HTTP_NOT_FOUND' || absent.includes(err.code))) return undefined;
    throw err;
  }
}
