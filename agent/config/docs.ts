// The README's configuration table, generated from the schema (agent/config/schema.ts):
// scripts/gen-config-docs.mjs writes it between the markers, and
// test/unit/agent/config/docs.test.ts fails when the README's copy differs. The default
// column is also what `--help` prints after each flag (agent/config/help.ts), without the
// Markdown.
import { KindGuard, type TSchema } from '@sinclair/typebox';
import { CONFIG_KEYS, DEFAULTS, keyMeta, keySchema } from './schema.js';
import { flagOf } from './flags.js';

export const TABLE_START = '<!-- config-table:start -->';
export const TABLE_END = '<!-- config-table:end -->';

/** A value as the README writes it: strings in backticks, a tuple as its flag takes it. */
function formatValue(schema: TSchema, v: unknown): string {
  if (KindGuard.IsTuple(schema) && Array.isArray(v)) return v.join('-');
  if (KindGuard.IsObject(schema) && typeof v === 'object' && v !== null) {
    return `\`{${Object.entries(v).map(([k, m]) => `${k}: ${typeof m === 'string' ? JSON.stringify(m) : String(m)}`).join(', ')}}\``;
  }
  return typeof v === 'string' ? `\`${v}\`` : String(v);
}

export function stripMarkdown(text: string): string {
  return text.replaceAll('`', '');
}

/** Where a key's value comes from when neither the file nor a flag sets it, in Markdown. */
export function defaultCell(schema: TSchema, value: unknown): string {
  const m = keyMeta(schema);
  let cell = m.mandatory ? 'required' : value !== undefined ? formatValue(schema, value) : m.defaultText ?? '(none)';
  if (m.env) cell = m.mandatory ? `${cell}, or env \`${m.env}\`` : `env \`${m.env}\`, else ${cell}`;
  // secretEnv holds what the key's file would: the token itself, not a path.
  if (m.secretEnv) cell = `${cell}, or its content in env \`${m.secretEnv}\``;
  return cell;
}

export function configTable(): string {
  const rows = CONFIG_KEYS.map((key) => {
    const schema = keySchema(key);
    const flag = flagOf(key);
    const cells = [`\`${key}\``, flag ? `\`--${flag.name}\`` : '—', defaultCell(schema, DEFAULTS[key]), keyMeta(schema).description];
    return `| ${cells.map((c) => c.replaceAll('|', '\\|')).join(' | ')} |`;
  });
  return [
    '<!-- Generated from agent/config/schema.ts by `npm run config-docs`; test/unit/agent/config/docs.test.ts fails when it is stale. -->',
    'A key is set by its flag, else by the file, else by its env variable; else it takes the default.',
    '',
    '| key | flag | default | meaning |',
    '|---|---|---|---|',
    ...rows,
  ].join('\n');
}

/** The text between the README's markers (without them), or undefined when they are missing. */
export function tableIn(readme: string): string | undefined {
  const start = readme.indexOf(TABLE_START);
  const end = readme.indexOf(TABLE_END);
  if (start < 0 || end < start) return undefined;
  return readme.slice(start + TABLE_START.length, end).replace(/^\n/, '').replace(/\n$/, '');
}

/** The README with its table replaced by the schema's. */
export function withConfigTable(readme: string): string {
  if (tableIn(readme) === undefined) throw new Error(`README.md has no ${TABLE_START} ... ${TABLE_END} section`);
  const start = readme.indexOf(TABLE_START) + TABLE_START.length;
  return `${readme.slice(0, start)}\n${configTable()}\n${readme.slice(readme.indexOf(TABLE_END))}`;
}
