// The log shipper over real files in conmon's k8s-file format (what runc and LXC dynos write).
import t from 'tap';
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LogShipper, MAX_LINE_BYTES, splitLine } from '../../../../agent/dynos/log-shipper.js';
import { tempDir } from '../../../helpers/host.js';

const web1 = { dynoId: 'app-web-1', app: 'app', name: 'web.1' };
const k8s = (stream: string, tag: 'F' | 'P', text: string) => `2026-11-22T10:00:00.000000000Z ${stream} ${tag} ${text}\n`;

t.test('splitLine cuts at 10,000 bytes, never inside a character', async (t) => {
  t.same(splitLine('short'), ['short']);
  const ascii = 'a'.repeat(25_000);
  t.same(splitLine(ascii).map((p) => p.length), [10_000, 10_000, 5_000]);
  const wide = '€'.repeat(5_000); // 3 bytes each: 15,000 bytes
  const parts = splitLine(wide);
  t.same(parts.map((p) => Buffer.byteLength(p)), [9_999, 5_001]);
  t.equal(parts.join(''), wide, 'nothing lost or mangled');
});

t.test('app lines are rendered Heroku style, partial records joined, long lines split; system lines too', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'log');
  writeFileSync(file, '');
  const s = new LogShipper();
  await s.attach(web1, { path: file, format: 'k8s-file' });
  s.system(web1, 'State changed from starting to up');
  appendFileSync(file, k8s('stdout', 'F', 'hello') + k8s('stderr', 'P', 'half ') + k8s('stderr', 'F', 'and half') + k8s('stdout', 'F', 'x'.repeat(MAX_LINE_BYTES + 5)));
  await s.poll();
  const lines = s.recent('app-web-1');
  t.match(lines[0], /^\S+Z slipway\[web\.1\]: State changed from starting to up$/);
  t.same(lines.slice(1, 3), ['2026-11-22T10:00:00.000000000Z app[web.1]: hello', '2026-11-22T10:00:00.000000000Z app[web.1]: half and half']);
  t.equal(lines.length, 5, 'the long line became two');
  t.equal(lines[4], '2026-11-22T10:00:00.000000000Z app[web.1]: xxxxx');
  const batch = s.take(1000)!;
  t.equal(batch.lines.length, 5);
  t.same(batch.lines[1], { dynoId: 'app-web-1', app: 'app', line: lines[1] });
  t.equal(batch.dropped, 0);
  t.equal(s.take(1000), undefined, 'nothing left to send');
  appendFileSync(file, k8s('stdout', 'F', 'later'));
  await s.poll();
  t.same(s.take(10)!.lines.map((l) => l.line), ['2026-11-22T10:00:00.000000000Z app[web.1]: later'], 'only new lines on the next round');
});

t.test('a full queue drops the oldest lines and reports how many; the ring keeps the last lines per dyno', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'log');
  writeFileSync(file, Array.from({ length: 50 }, (_, i) => k8s('stdout', 'F', `line ${i}`)).join(''));
  const s = new LogShipper({ queueLines: 20, keepLines: 30 });
  await s.attach(web1, { path: file, format: 'k8s-file' });
  await s.poll();
  t.equal(s.queued, 20);
  const batch = s.take(1000)!;
  t.equal(batch.dropped, 30, 'the link was away: 30 oldest lines dropped, and said so');
  t.match(batch.lines[0]!.line, /line 30$/, 'the newest 20 are kept');
  t.equal(s.recent('app-web-1').length, 30);
  t.match(s.recent('app-web-1', 1)[0], /line 49$/);
  t.equal(s.take(1000), undefined, 'the drop count is reported once');
});

t.test('a batch fits a frame: it stops at the byte budget', async (t) => {
  const s = new LogShipper();
  for (let i = 0; i < 100; i++) s.system(web1, 'y'.repeat(5_000));
  const first = s.take(1000, 64 * 1024)!;
  t.ok(first.lines.length > 0 && first.lines.length < 100, `${first.lines.length} lines in a 64 KiB batch`);
  t.ok(JSON.stringify(first).length < 64 * 1024);
});

t.test('a re-adopted dyno is followed from the end; flush reads the last lines before the file goes', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'log');
  writeFileSync(file, k8s('stdout', 'F', 'written while the agent was down'));
  const s = new LogShipper();
  await s.attach(web1, { path: file, format: 'k8s-file' }, true);
  appendFileSync(file, k8s('stdout', 'P', 'last words'));
  await s.flush('app-web-1');
  t.same(s.take(10)!.lines.map((l) => l.line), ['2026-11-22T10:00:00.000000000Z app[web.1]: last words'], 'not the old line; the unfinished last line is not lost');
  appendFileSync(file, k8s('stdout', 'F', 'after flush'));
  await s.poll();
  t.equal(s.take(10), undefined, 'a flushed dyno is not read until attached again');
});
