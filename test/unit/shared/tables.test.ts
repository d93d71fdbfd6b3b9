// The text helpers of both CLIs (shared/tables.ts): aligned tables and short numbers.
import t from 'tap';
import { age, bytes, cell, duration, fields, plural, table } from '../../../shared/tables.js';

const NOW = Date.parse('2026-12-02T15:00:00.000Z');
t.test('table: columns aligned two spaces apart, no trailing blanks, - for a missing cell', async (t) => {
  t.equal(table(['NAME', 'STATE', 'ID'], [['web.1', 'up', 'a1'], ['worker.10', undefined, 'b2']]),
    'NAME       STATE  ID\nweb.1      up     a1\nworker.10  -      b2\n');
  t.equal(table(['A', 'LAST'], [['x', '']]), 'A  LAST\nx\n', 'an empty last cell leaves no blanks');
  t.equal(fields([['agent', 'host-1'], ['slug cache', '2 slugs']]), 'agent       host-1\nslug cache  2 slugs\n');
});

t.test('numbers: bytes in binary units, durations in their two largest units', async (t) => {
  t.equal(bytes(512), '512 B');
  t.equal(bytes(1536), '1.5 KiB');
  t.equal(bytes(2 * 1024 ** 3), '2 GiB');
  t.equal(bytes(20 * 1024 ** 4 * 1024), '20480 TiB', 'past the last unit it stays there');
  t.equal(duration(45_900), '45s');
  t.equal(duration(192_000), '3m12s');
  t.equal(duration((2 * 3600 + 5 * 60) * 1000), '2h05m');
  t.equal(duration((4 * 24 + 3) * 3600_000), '4d03h');
  t.equal(duration(-5), '0s', 'a clock step backwards is not a negative age');
  t.equal(age('2026-12-02T14:59:00.000Z', NOW), '1m00s');
  t.equal(age(undefined, NOW), '-');
  t.equal(age('not a time', NOW), '-');
  t.equal(plural(1, 'slug'), '1 slug');
  t.equal(plural(0, 'slug'), '0 slugs');
  t.equal(cell(null), '-');
  t.equal(cell(false), 'false');
  t.equal(cell({ a: 1 }), '{"a":1}');
});
