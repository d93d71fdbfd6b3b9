// --help text from the schema: one line per flag, its meaning (the README's, without the
// Markdown) and where its value comes from otherwise (the README's default column).
import { CONFIG_KEYS, DEFAULT_CONFIG_PATH, DEFAULTS, keyMeta, keySchema } from './schema.js';
import { flagOf, type CommandFlags } from './flags.js';
import { defaultCell, stripMarkdown } from './docs.js';

/** Terminal width the text is wrapped to, and the column the meanings start in. */
const WIDTH = 100;
const COLUMN = 30;

/** `  LEFT   TEXT`, TEXT wrapped at WIDTH and indented to COLUMN (below LEFT when LEFT is long). */
export function helpLine(left: string, text: string): string {
  const lines: string[] = [];
  let line = `  ${left}`;
  if (line.length < COLUMN) line = line.padEnd(COLUMN);
  else {
    lines.push(line);
    line = ' '.repeat(COLUMN);
  }
  let empty = true;
  for (const word of text.split(' ')) {
    if (!empty && line.length + 1 + word.length > WIDTH) {
      lines.push(line);
      line = ' '.repeat(COLUMN);
      empty = true;
    }
    line += empty ? word : ` ${word}`;
    empty = false;
  }
  lines.push(line);
  return lines.map((l) => `${l}\n`).join('');
}

/** The option lines of one command: --config (`reads`: the keys it is read for, when not all),
 * its config keys in schema order, its own flags that have help. */
export function optionLines(command: CommandFlags, reads?: string): string {
  let out = helpLine('--config FILE', `JSON config${reads ? `, read for ${reads}` : ''} (default ${DEFAULT_CONFIG_PATH} if present)`);
  for (const key of CONFIG_KEYS.filter((k) => command.keys.includes(k))) {
    const flag = flagOf(key);
    if (!flag) continue;
    const schema = keySchema(key);
    const from = stripMarkdown(defaultCell(schema, DEFAULTS[key]));
    const when = keyMeta(schema).mandatory ? from : `default: ${from}`;
    out += helpLine(`--${flag.name}${flag.arg ? ` ${flag.arg}` : ''}`, `${stripMarkdown(keyMeta(schema).description)} (${when})`);
  }
  for (const [name, f] of Object.entries(command.own ?? {})) {
    if (f.help) out += helpLine(`--${name}${f.arg ? ` ${f.arg}` : ''}`, f.help);
  }
  return out;
}
