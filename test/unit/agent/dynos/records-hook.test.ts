// Record keeping through the dyno owner (records-hook.ts): when the record is written, rewritten
// and removed, as the file would show it, with a records store that keeps them in memory and
// can hold a write back (a slow disk).
import t from 'tap';
import type { DynoRecord } from '../../../../agent/dynos/dyno-records.js';
import { dynoSetup, dynoSpec, workerSpec } from '../../../helpers/fake-dyno.js';

/** A records store in memory: `file` is what the dyno's record file would hold. */
function memoryRecords() {
  const r = {
    file: undefined as DynoRecord | undefined,
    ops: [] as string[],
    /** Holds back the next write (only that one) until it resolves. */
    hold: undefined as Promise<void> | undefined,
    async write(rec: DynoRecord) {
      const held = r.hold;
      r.hold = undefined;
      if (held) await held;
      r.file = rec;
      r.ops.push(rec.stopping ? `write stopping ${rec.stopping.graceMs}` : `write${rec.port ? ' port' : ''}`);
    },
    async remove() {
      r.file = undefined;
      r.ops.push('remove');
    },
    async readAll() { return { records: [], bad: [] }; },
  };
  return r;
}

t.test('the record is written before the container exists, marked on a stop, removed once down', async (t) => {
  const s = dynoSetup(t);
  const records = memoryRecords();
  let startedWith: string | undefined;
  const start = s.driver.start.bind(s.driver);
  s.driver.start = async (spec) => { startedWith = records.ops.join(','); return start(spec); };
  const d = s.make(dynoSpec(), { records: records as never });
  d.begin();
  await s.until('up');
  t.equal(startedWith, 'write port', 'written, with the web port, before the container started');
  t.same(records.file, { spec: d.spec, port: s.events[1]!.status.endpoint!.port });
  await d.stop(700);
  t.same(records.ops, ['write port', 'write stopping 700', 'remove']);
  t.equal(records.file, undefined, 'a dyno that is down leaves no record');
});

t.test('a stop during the launch\'s write is not overtaken by it: no record is left', async (t) => {
  const s = dynoSetup(t);
  const records = memoryRecords();
  let release!: () => void;
  records.hold = new Promise((r) => { release = r; });
  const d = s.make(workerSpec(), { records: records as never });
  d.begin();
  await s.settle();
  const stopped = d.stop(500);
  await s.settle();
  release();
  await stopped;
  await s.settle();
  t.same(records.ops, ['write', 'write stopping 500', 'remove'], 'in the order asked for');
  t.equal(records.file, undefined, 'the next agent would not resurrect the dyno');
  t.same(s.driver.started, [], 'and nothing started');
});

t.test('a dyno that crashed for good forgets its record; one waiting for its restart keeps it', async (t) => {
  const s = dynoSetup(t);
  const records = memoryRecords();
  const d = s.make(dynoSpec({ type: 'run', name: 'run.1', id: 'app1-run-1-abc' }), { records: records as never });
  d.begin();
  await s.until('up');
  s.driver.exit(d.id, { code: 1, signal: null, oomKilled: false });
  await s.until('crashed');
  await s.settle();
  t.equal(records.file, undefined, 'a one-off is not restarted: nothing to re-adopt');

  const w = s.make(workerSpec(), { records: records as never });
  w.begin();
  await s.until('up', 2);
  s.driver.exit(w.id, { code: 1, signal: null, oomKilled: false });
  await s.until('crashed', 2);
  await s.settle();
  t.equal(records.file?.spec.id, w.id, 'a restart is coming: the record stays');
  await w.stop(500);
  await d.stop(500);
});
