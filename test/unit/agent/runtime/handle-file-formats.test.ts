// Driver handles on disk (agent/runtime/handle-file.ts): every version's fixture of every
// driver loads through the reader an agent uses at start, and the writer's copy reads back
// the same. The directory recorded in the file yields to the one it is in (the dir may move).
import t from 'tap';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HANDLE_FILE, HANDLE_VERSION, readHandle, writeHandle } from '../../../../agent/runtime/handle-file.js';
import { stateFixtures } from '../../../helpers/state-fixtures.js';

const fixtures = stateFixtures((n) => /^handle-.*\.json$/.test(n));

t.test('every version of every driver handle loads, and its saved copy round-trips', async (t) => {
  t.same(fixtures.filter((f) => f.version === 'v1').map((f) => f.name).sort(), ['handle-docker.json', 'handle-lxc.json', 'handle-runc.json'], 'a v1 handle of each driver');
  for (const f of fixtures) {
    const dir = mkdtempSync(join(tmpdir(), 'slipway-handle-fmt-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    copyFileSync(f.path, join(dir, HANDLE_FILE));
    const { handle } = JSON.parse(f.text) as { handle: Record<string, unknown> };
    const loaded = await readHandle(dir);
    t.same(loaded, { ...handle, dir }, `${f.version}/${f.name}: every field is read`);
    if (!loaded) continue;
    await writeHandle(loaded);
    const saved = JSON.parse(readFileSync(join(dir, HANDLE_FILE), 'utf8')) as unknown;
    t.same(saved, { version: HANDLE_VERSION, handle: { ...handle, dir } }, `${f.version}/${f.name}: saved in version ${HANDLE_VERSION}`);
    t.same(await readHandle(dir), loaded, `${f.version}/${f.name}: the saved copy reads back the same`);
  }
});
