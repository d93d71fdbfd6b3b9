// Dyno records on disk (agent/dynos/dyno-records.ts): every version's fixture is re-adopted
// by the reader an agent uses at start, and the writer's copy reads back the same.
import t from 'tap';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynoRecords, RECORD_VERSION, type DynoRecord } from '../../../../agent/dynos/dyno-records.js';
import { stateFixtures } from '../../../helpers/state-fixtures.js';

const fixtures = stateFixtures((n) => n === 'dyno-record.json');

t.test('every version of the dyno record loads, and its saved copy round-trips', async (t) => {
  t.ok(fixtures.some((f) => f.version === 'v1'), 'the v1 fixture is there');
  for (const f of fixtures) {
    const dir = mkdtempSync(join(tmpdir(), 'slipway-record-fmt-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const { record } = JSON.parse(f.text) as { record: DynoRecord };
    const file = join(dir, `${record.spec.id}.json`);
    copyFileSync(f.path, file);
    const records = new DynoRecords(dir);
    const read = await records.readAll();
    t.same(read.bad, [], `${f.version}: nothing is moved aside`);
    t.same(read.records, [record], `${f.version}: every field is read (spec, port, a stop under way)`);
    await records.write(read.records[0]!);
    t.same(JSON.parse(readFileSync(file, 'utf8')), { version: RECORD_VERSION, record }, `${f.version}: saved in version ${RECORD_VERSION}`);
    t.same((await records.readAll()).records, read.records, `${f.version}: the saved copy reads back the same`);
    t.same(readdirSync(dir), [`${record.spec.id}.json`], `${f.version}: no temp file is left`);
  }
});
