// The example config shipped in systemd/ must stay valid as the schema evolves.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { validateFileConfig } from '../../../agent/config.js';

t.test('systemd/agent.json.example validates', async (t) => {
  const file = join(import.meta.dirname, '../../../systemd/agent.json.example');
  const parsed = validateFileConfig(JSON.parse(readFileSync(file, 'utf8')), file);
  t.equal(parsed.stateDir, '/var/lib/slipway');
});
