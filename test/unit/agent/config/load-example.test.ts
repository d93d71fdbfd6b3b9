// The example config shipped in systemd/ must stay valid as the schema evolves; it shows what a
// host must choose, and a key it shows that has a default shows the schema's, so it cannot drift.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { validateFileConfig } from '../../../../agent/config/load.js';
import { DEFAULTS, NO_DEFAULT } from '../../../../agent/config/schema.js';

const file = join(import.meta.dirname, '../../../../systemd/agent.json.example');

t.test('systemd/agent.json.example validates', async (t) => {
  const parsed = validateFileConfig(JSON.parse(readFileSync(file, 'utf8')), file);
  t.equal(parsed.stateDir, '/var/lib/slipway');
});

t.test('the example sets what a host must choose; a default it repeats is the schema\'s', async (t) => {
  const parsed = validateFileConfig(JSON.parse(readFileSync(file, 'utf8')), file) as Record<string, unknown>;
  for (const key of ['coordinatorUrl', 'tokenFile']) t.ok(parsed[key], `${key} is shown`);
  for (const [key, value] of Object.entries(parsed)) {
    if ((NO_DEFAULT as readonly string[]).includes(key)) continue;
    t.same(value, (DEFAULTS as Record<string, unknown>)[key], `${key} is the default`);
  }
});
