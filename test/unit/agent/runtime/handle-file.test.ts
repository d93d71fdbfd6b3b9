import t from 'tap';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HANDLE_FILE, readHandle, writeHandle } from '../../../../agent/runtime/handle-file.js';
import type { DynoHandle } from '../../../../agent/runtime/driver.js';

const dir = mkdtempSync(join(tmpdir(), 'slipway-handle-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const handle: DynoHandle = {
  driver: 'lxc', dynoId: 'd1', containerId: 'slipway-d1', dir, pid: 42, monitorPid: 41,
  cgroupPath: '/slipway/slipway-d1', startedAt: '2026-11-22T00:00:00.000Z', data: { logPath: '/x' },
};

t.test('a written handle reads back whole, and no temp file is left', async (t) => {
  await writeHandle(handle);
  t.same(await readHandle(dir), handle);
  t.same(readdirSync(dir), [HANDLE_FILE]);
});

t.test('the directory the file is in wins over the one recorded (the dir may have moved)', async (t) => {
  writeFileSync(join(dir, HANDLE_FILE), JSON.stringify({ version: 1, handle: { ...handle, dir: '/elsewhere' } }));
  t.equal((await readHandle(dir))?.dir, dir);
});

t.test('missing, corrupt, newer or foreign handle files are unknown, never a crash', async (t) => {
  t.equal(await readHandle(join(dir, 'nope')), undefined);
  for (const body of ['{', '[]', 'null', JSON.stringify({ version: 2, handle }), JSON.stringify({ version: 1, handle: { ...handle, driver: 'rkt' } }), JSON.stringify({ version: 1, handle: { ...handle, containerId: 7 } })]) {
    writeFileSync(join(dir, HANDLE_FILE), body);
    t.equal(await readHandle(dir), undefined, body.slice(0, 40));
  }
});
