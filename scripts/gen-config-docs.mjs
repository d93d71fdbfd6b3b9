#!/usr/bin/env node
// Writes the README's configuration table from the agent's config schema
// (agent/config/schema.ts, through dist/agent/config/docs.js: run `npx tsc -p tsconfig.json`
// first, or `npm run config-docs`, which does). With --check it writes nothing and exits 1
// when the README's table is stale; test/unit/agent/config/docs.test.ts checks the same.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withConfigTable } from '../dist/agent/config/docs.js';

const readme = join(import.meta.dirname, '..', 'README.md');
const before = readFileSync(readme, 'utf8');
const after = withConfigTable(before);
if (process.argv.includes('--check')) {
  if (after !== before) {
    process.stderr.write('README.md: the configuration table differs from agent/config/schema.ts; run npm run config-docs\n');
    process.exit(1);
  }
} else if (after !== before) {
  writeFileSync(readme, after);
  process.stdout.write('README.md: configuration table written\n');
}
