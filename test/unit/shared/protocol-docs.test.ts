// Keeps the written protocol in step with its source (shared/protocol.ts): the emitted JSON
// Schema file must equal what the schemas say now, and docs/protocol.md must name every
// message type and every field.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { AGENT_MESSAGES, COORDINATOR_MESSAGES, protocolJsonSchema } from '../../../shared/protocol.js';

const doc = readFileSync(new URL('../../../docs/protocol.md', import.meta.url), 'utf8');

/** Every property name anywhere in a JSON Schema. */
function fieldNames(schema: unknown, into = new Set<string>()): Set<string> {
  if (Array.isArray(schema)) for (const s of schema) fieldNames(s, into);
  else if (schema && typeof schema === 'object') {
    const o = schema as Record<string, unknown>;
    if (o.properties && typeof o.properties === 'object') for (const k of Object.keys(o.properties)) into.add(k);
    for (const v of Object.values(o)) fieldNames(v, into);
  }
  return into;
}

t.test('docs/protocol.schema.json is the schema the code has (regenerate: npm run schema > docs/protocol.schema.json)', async (t) => {
  const file = JSON.parse(readFileSync(new URL('../../../docs/protocol.schema.json', import.meta.url), 'utf8')) as unknown;
  t.same(file, JSON.parse(JSON.stringify(protocolJsonSchema())));
});

t.test('docs/protocol.md names every message type', async (t) => {
  for (const type of [...Object.keys(AGENT_MESSAGES), ...Object.keys(COORDINATOR_MESSAGES)]) t.match(doc, `| \`${type}\` |`, type);
});

t.test('docs/protocol.md names every field of every message', async (t) => {
  const fields = [...fieldNames(JSON.parse(JSON.stringify(protocolJsonSchema())))].sort();
  t.ok(fields.length > 50, `${fields.length} field names`);
  const missing = fields.filter((f) => !new RegExp(`\\b${f}\\b`).test(doc));
  t.same(missing, [], 'fields the page does not mention');
});
