import t from 'tap';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LogFollower } from '../../../../agent/dynos/log-follow.js';
import type { LogRecord } from '../../../../agent/dynos/log-tail.js';

const dir = mkdtempSync(join(tmpdir(), 'slipway-follow-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('follows a file that appears later, across appends split mid-line and mid-character, and after truncation', async (t) => {
  const file = join(dir, 'log');
  const seen: LogRecord[] = [];
  const f = new LogFollower({ path: file, format: 'k8s-file' }, (r) => seen.push(r));
  f.start();
  await new Promise((r) => setTimeout(r, 120));
  const line = Buffer.from('2026-11-22T00:00:00Z stdout F héllo\n');
  const cut = line.indexOf(0xc3) + 1; // inside the two bytes of é
  writeFileSync(file, line.subarray(0, cut));
  await new Promise((r) => setTimeout(r, 120));
  appendFileSync(file, Buffer.concat([line.subarray(cut), Buffer.from('2026-11-22T00:00:01Z stderr F second\n')]));
  await new Promise((r) => setTimeout(r, 120));
  writeFileSync(file, '2026-11-22T00:00:02Z stdout F after-rotate\n');
  await f.stop();
  t.same(seen.map((r) => `${r.stream}:${r.text}`), ['stdout:héllo', 'stderr:second', 'stdout:after-rotate']);
});
