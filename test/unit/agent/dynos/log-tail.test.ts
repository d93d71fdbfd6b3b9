import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderK8sLine, tailLog, TAIL_BYTES } from '../../../../agent/dynos/log-tail.js';

const dir = mkdtempSync(join(tmpdir(), 'slipway-logtail-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test("conmon's k8s-file lines render Heroku style", async (t) => {
  t.equal(renderK8sLine('2026-11-22T08:13:22.404395054+00:00 stdout F listening on 20000', 'web.1'), '2026-11-22T08:13:22.404395054+00:00 app[web.1]: listening on 20000');
  t.equal(renderK8sLine('2026-11-22T08:13:22Z stderr F boom', 'worker.2'), '2026-11-22T08:13:22Z app[worker.2]: boom');
  t.equal(renderK8sLine('2026-11-22T08:13:22Z stdout F ', 'web.1'), '2026-11-22T08:13:22Z app[web.1]: ', 'an empty line stays a line');
  t.equal(renderK8sLine('garbage', 'web.1'), undefined);
});

t.test('the tail returns the last N lines; a missing log is empty', async (t) => {
  const file = join(dir, 'log');
  writeFileSync(file, Array.from({ length: 50 }, (_, i) => `2026-11-22T00:00:00Z stdout F line ${i}`).join('\n') + '\n');
  t.same(await tailLog(file, 'web.1', 2), ['2026-11-22T00:00:00Z app[web.1]: line 48', '2026-11-22T00:00:00Z app[web.1]: line 49']);
  t.same(await tailLog(join(dir, 'nope'), 'web.1', 10), []);
});

t.test('a huge log is read only from its end, and the cut first line is dropped', async (t) => {
  const file = join(dir, 'big');
  const line = `2026-11-22T00:00:00Z stdout F ${'x'.repeat(1000)}`;
  const count = Math.ceil((TAIL_BYTES * 2) / (line.length + 1));
  writeFileSync(file, Array.from({ length: count }, () => line).join('\n') + '\nlast-partial');
  const lines = await tailLog(file, 'web.1', 1_500);
  t.ok(lines.length > 0 && lines.length < count, 'bounded read');
  t.ok(lines.every((l) => l.endsWith('x'.repeat(1000))), 'no partial line is rendered');
});

t.test("Docker's json-file lines render the same way; partial records are joined", async (t) => {
  const file = join(dir, 'docker.log');
  const rec = (log: string, stream = 'stdout', time = '2026-11-22T00:00:01.5Z') => JSON.stringify({ log, stream, time });
  writeFileSync(file, [rec('first\n'), rec('part-', 'stdout', '2026-11-22T00:00:02Z'), rec('whole\n', 'stdout', '2026-11-22T00:00:03Z'), rec('err\n', 'stderr'), 'not json', rec(''), ''].join('\n'));
  t.same(await tailLog({ path: file, format: 'docker-json' }, 'web.1', 10), [
    '2026-11-22T00:00:01.5Z app[web.1]: first',
    '2026-11-22T00:00:02Z app[web.1]: part-whole',
    '2026-11-22T00:00:01.5Z app[web.1]: err',
    '2026-11-22T00:00:01.5Z app[web.1]: ',
  ]);
});

t.test("conmon's partial (P) records are joined into one line", async (t) => {
  const file = join(dir, 'partial.log');
  writeFileSync(file, '2026-11-22T00:00:00Z stdout P abc\n2026-11-22T00:00:01Z stdout F def\n2026-11-22T00:00:02Z stdout F next\n');
  t.same(await tailLog({ path: file, format: 'k8s-file' }, 'web.1', 10), ['2026-11-22T00:00:00Z app[web.1]: abcdef', '2026-11-22T00:00:02Z app[web.1]: next']);
});
