// Command-line flags from the schema's flag metadata: one parseArgs table per command, built
// from the config keys it takes (agent/config/commands.ts) plus `--config` and the command's
// own flags. A flag's text becomes the key's type (`--port-range 1-2` a pair of integers, a
// list comma-separated) and is checked against the key's schema, so a bad flag is
// CONFIG_INVALID naming the flag and the field, as a bad file names the file and the field.
// The same conversion serves environment variables (`env` in the schema).
import { parseArgs } from 'node:util';
import { KindGuard, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { SlipwayError } from '../../shared/errors.js';
import { keyMeta, keySchema, withDefaults, type ConfigKey, type Defaulted, type FileConfig } from './schema.js';
import { loadFileConfig } from './load.js';

/** A flag of one command that is not a config key (`--stop-dynos-on-exit`, `--sha256`). */
export interface OwnFlag {
  type: 'string' | 'boolean';
  multiple?: boolean;
  /** --help text; a flag without one is described by its command's own usage text. */
  help?: string;
  /** The placeholder --help shows for a string flag's value. */
  arg?: string;
}

/** What one command takes: config keys as flags, its own flags, and whether it has operands. */
export interface CommandFlags<O extends Record<string, OwnFlag> = Record<string, OwnFlag>> {
  keys: readonly ConfigKey[];
  own?: O;
  positionals?: boolean;
}

type OwnValues<O> = { [K in keyof O]?: O[K] extends { type: 'boolean' } ? boolean : O[K] extends { multiple: true } ? string[] : string };

export interface ParsedCommandLine<O> {
  /** --config, when given. */
  configPath: string | undefined;
  /** The config keys the flags set, converted and checked. */
  flags: FileConfig;
  values: OwnValues<O>;
  positionals: string[];
}

/** A key's flag: its name without dashes (parseArgs's) and the placeholder of its value. */
export function flagOf(key: ConfigKey): { name: string; arg: string | undefined } | undefined {
  const flag = keyMeta(keySchema(key)).flag;
  if (flag === undefined) return undefined;
  const [name, arg] = flag.split(' ');
  return { name: name!.replace(/^--/, ''), arg };
}

function flagName(key: ConfigKey): string {
  const f = flagOf(key);
  if (!f) throw new Error(`config key ${key} has no flag in agent/config/schema.ts`);
  return f.name;
}

/** Text (a flag's or an env variable's) as the value of `schema`, or undefined when it cannot be. */
function convert(schema: TSchema, text: string): unknown {
  if (KindGuard.IsInteger(schema)) return /^-?[0-9]+$/.test(text) ? Number(text) : undefined;
  if (KindGuard.IsNumber(schema)) return /^-?[0-9]+(\.[0-9]+)?$/.test(text) ? Number(text) : undefined;
  if (KindGuard.IsBoolean(schema)) return text === 'true' ? true : text === 'false' ? false : undefined;
  if (KindGuard.IsTuple(schema)) {
    // A tuple is written as its items joined by '-' (portRange: MIN-MAX).
    const items = schema.items ?? [];
    const parts = text.split('-');
    if (parts.length !== items.length) return undefined;
    const values = parts.map((p, i) => convert(items[i]!, p));
    return values.includes(undefined) ? undefined : values;
  }
  // A list is written comma-separated (coordinatorUrls: URL,URL); the schema checks each item.
  if (KindGuard.IsArray(schema)) return text.split(',').map((item) => item.trim());
  if (KindGuard.IsString(schema) || KindGuard.IsUnion(schema)) return text; // the schema checks pattern and literals
  throw new Error(`no text form for a ${String(schema.type)} config value`);
}

/** `text` as the value of `key`, checked like the file's; `source` names where it came from. */
export function valueFromText(key: ConfigKey, text: string, source: string): unknown {
  const schema = keySchema(key);
  const value = convert(schema, text);
  const shown = `${source} ${JSON.stringify(text)}`;
  if (value === undefined) {
    const expected = flagOf(key)?.arg ?? (KindGuard.IsInteger(schema) ? 'an integer' : String(schema.type));
    throw new SlipwayError('CONFIG_INVALID', `${shown}: expected ${expected}`);
  }
  const e = Value.Errors(schema, value).First();
  if (e) throw new SlipwayError('CONFIG_INVALID', `${shown}: ${key}${e.path} ${e.message}`);
  return value;
}

/** Parses one command's arguments; an unknown flag or a bad value is CONFIG_INVALID. */
export function parseCommandLine<O extends Record<string, OwnFlag>>(argv: string[], command: CommandFlags<O>): ParsedCommandLine<O> {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = { config: { type: 'string' } };
  for (const key of command.keys) options[flagName(key)] = { type: KindGuard.IsBoolean(keySchema(key)) ? 'boolean' : 'string' };
  for (const [name, f] of Object.entries(command.own ?? {})) options[name] = { type: f.type, ...(f.multiple ? { multiple: true } : {}) };
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: command.positionals === true, strict: true });
  } catch (err) {
    throw new SlipwayError('CONFIG_INVALID', (err as Error).message, { cause: err });
  }
  const flags: Record<string, unknown> = {};
  for (const key of command.keys) {
    const name = flagName(key);
    const raw = parsed.values[name];
    if (typeof raw === 'string') flags[key] = valueFromText(key, raw, `--${name}`);
    else if (typeof raw === 'boolean') flags[key] = raw;
  }
  const own = Object.fromEntries(Object.keys(command.own ?? {}).filter((n) => parsed.values[n] !== undefined).map((n) => [n, parsed.values[n]]));
  const config = parsed.values.config;
  return {
    configPath: typeof config === 'string' ? config : undefined,
    flags,
    // parseArgs types its values by the options it was given: the command's own are these.
    values: own as OwnValues<O>,
    positionals: parsed.positionals,
  };
}

/** For operator commands: arguments, then the config file with the flags over it, then defaults. */
export function loadCommandConfig<O extends Record<string, OwnFlag>>(argv: string[], command: CommandFlags<O>): { config: Defaulted; values: OwnValues<O>; positionals: string[] } {
  const { configPath, flags, values, positionals } = parseCommandLine(argv, command);
  return { config: withDefaults(loadFileConfig(configPath, flags)), values, positionals };
}
