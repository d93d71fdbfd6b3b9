// Helper of slug-bench.mjs: loads the agent's slug store like a running agent has it loaded,
// prints "ready", and on a line "go" on stdin fetches one slug and prints {ms, files, bytes}.
// Startup is outside the measurement: the agent pays it once, not per slug.
import { createInterface } from 'node:readline';
import { createSlugStore } from '../../dist/agent/slugs/factory.js';
import { createRootLogger } from '../../dist/shared/log.js';

const [, , url, sha, dir] = process.argv;
const store = createSlugStore(
  { dir, owner: { uid: 64000, gid: 64000 }, budgetBytes: 20 * 1024 ** 3, floorBytes: 1024 ** 3, s3: {} },
  createRootLogger({ level: 'silent' }),
);
await store.init();
process.stdout.write('ready\n');
for await (const line of createInterface({ input: process.stdin })) {
  if (line !== 'go') continue;
  const t0 = process.hrtime.bigint();
  const e = await store.ensure({ url, sha256: sha });
  process.stdout.write(JSON.stringify({ ms: Number(process.hrtime.bigint() - t0) / 1e6, files: e.files, bytes: e.bytes }) + '\n');
  process.exit(0);
}
