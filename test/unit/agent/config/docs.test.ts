// The README's configuration table is generated from the schema (scripts/gen-config-docs.mjs);
// this keeps the README's copy from drifting, as test/unit/shared/errors.test.ts does for
// docs/errors.md.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { configTable, tableIn, withConfigTable, TABLE_END, TABLE_START } from '../../../../agent/config/docs.js';
import { CONFIG_KEYS, keyMeta, keySchema } from '../../../../agent/config/schema.js';
import { DEFAULT_DOCKER_SOCKET } from '../../../../agent/runtime/docker/engine.js';

const readme = readFileSync(join(import.meta.dirname, '../../../../README.md'), 'utf8');

t.test("the README's table is the schema's (npm run config-docs writes it)", async (t) => {
  t.equal(tableIn(readme), configTable());
  t.equal(withConfigTable(readme), readme, 'writing it again changes nothing');
});

t.test('one row per key, in schema order, with its flag and default', async (t) => {
  const rows = configTable().split('\n').filter((l) => l.startsWith('| `'));
  t.same(rows.map((r) => /^\| `([A-Za-z0-9]+)`/.exec(r)?.[1]), CONFIG_KEYS);
  t.match(configTable(), /^\| `portRange` \| `--port-range` \| 20000-29999 \| /m);
  t.match(configTable(), /^\| `restarts` \| — \| `\{baseMs: 10000, capMs: 1200000, stableAfterMs: 600000, jitter: 0\.25\}` \| /m);
  t.match(configTable(), /^\| `tokenFile` \| `--token-file` \| required, or its content in env `SLIPWAY_AGENT_TOKEN` \| /m);
  t.match(configTable(), /^\| `logLevel` \| — \| env `SLIPWAY_LOG_LEVEL`, else `info` \| /m);
});

t.test("the Docker socket's default text names the engine client's constant", async (t) => {
  t.match(keyMeta(keySchema('dockerSocket')).defaultText, DEFAULT_DOCKER_SOCKET);
});

t.test('the markers must be there, and only the text between them is replaced', async (t) => {
  t.throws(() => withConfigTable('# no table\n'), /config-table:start/);
  t.equal(tableIn('nothing'), undefined);
  const doc = `before\n${TABLE_START}\nold\n${TABLE_END}\nafter\n`;
  t.equal(withConfigTable(doc), `before\n${TABLE_START}\n${configTable()}\n${TABLE_END}\nafter\n`);
});
