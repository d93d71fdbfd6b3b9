// Dyno records on disk and the manager's use of them at start: a bad record never crashes the
// agent, and a record whose container is gone is reported crashed and restarted. Real files
// in a temp dir; the runtime is the fake driver (test/integration/e2e/readoption.test.ts runs
// the real thing).
import t from 'tap';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DynoRecords, RECORD_VERSION, type DynoRecord } from '../../../../agent/dynos/dyno-records.js';
import { DynoManager } from '../../../../agent/dynos/manager.js';
import { PortAllocator } from '../../../../agent/dynos/ports.js';
import type { DynoSpec, DynoStatus } from '../../../../shared/protocol.js';
import { quietLogger, tempDir } from '../../../helpers/host.js';
import { FakeDriver } from '../../../helpers/fake-driver.js';

function spec(id: string): DynoSpec {
  return {
    id, app: 'app', type: 'worker', name: 'worker.1', command: 'run', env: { SECRET: 's3cr3t' },
    size: { name: 'standard-1x', memoryMb: 512, cpuShares: 1024, pidsLimit: 256 },
    slug: { url: 'http://127.0.0.1/x.tgz', sha256: 'a'.repeat(64) }, stack: 'busybox',
  };
}

t.test('records round-trip, private to root; bad files are reported and moved aside, never guessed at', async (t) => {
  const dir = join(await tempDir(t), 'records');
  const records = new DynoRecords(dir);
  const good: DynoRecord = { spec: spec('app-worker-1'), port: 20001 };
  await records.write(good);
  t.equal(statSync(join(dir, 'app-worker-1.json')).mode & 0o777, 0o600, 'config vars inside: 0600');
  t.equal(statSync(dir).mode & 0o777, 0o700);
  writeFileSync(join(dir, 'corrupt.json'), '{"version": 1, "rec');
  writeFileSync(join(dir, 'newer.json'), JSON.stringify({ version: RECORD_VERSION + 1, record: { anything: true } }));
  writeFileSync(join(dir, 'wrong-shape.json'), JSON.stringify({ version: RECORD_VERSION, record: { spec: { id: 'wrong-shape' } } }));
  writeFileSync(join(dir, 'renamed.json'), JSON.stringify({ version: RECORD_VERSION, record: good }));
  writeFileSync(join(dir, 'app-worker-2.json.tmp-abcd'), 'half a write');
  const { records: found, bad } = await records.readAll();
  t.same(found, [good]);
  t.same(bad.map((b) => [b.id, b.problem.split(':')[0]]), [
    ['corrupt', 'unreadable'], ['newer', 'written by a newer agent (record version 2)'], ['renamed', 'names dyno app-worker-1, not renamed'], ['wrong-shape', 'not a dyno record'],
  ]);
  const left = readdirSync(dir).sort();
  t.same(left.filter((n) => n.endsWith('.json')), ['app-worker-1.json'], 'bad files no longer read as records');
  t.equal(left.filter((n) => n.includes('.bad-')).length, 4, 'but kept for the operator');
  t.notOk(left.some((n) => n.includes('.tmp-')), 'an unfinished write is dropped');
  await records.remove('app-worker-1');
  t.same((await records.readAll()).records, []);
});

t.test('at start: a record whose container is gone is reported crashed and restarted; unowned dirs are removed', async (t) => {
  const root = await tempDir(t);
  const records = new DynoRecords(join(root, 'records'));
  const dynosDir = join(root, 'dynos');
  await records.write({ spec: spec('app-worker-1') });
  writeFileSync(join(root, 'records', 'garbage.json'), 'not json');
  mkdirSync(join(dynosDir, 'garbage'), { recursive: true });
  mkdirSync(join(dynosDir, 'stray'), { recursive: true });
  const driver = new FakeDriver();
  t.teardown(() => driver.close());
  const manager = new DynoManager({
    driver, records, log: quietLogger(), stopGraceMs: 1000, allocatableBytes: () => 4096 * 1024 * 1024,
    ports: new PortAllocator(38000, 38009, '127.0.0.1'),
    slugs: { async ensure() { return { path: '/slugs/x' }; }, unpin() {} },
    stacks: { resolve: () => ({ dir: '/stacks/busybox', shell: '/bin/sh' }) },
    settings: { dynosDir, address: '127.0.0.1', dynoUser: { uid: 64000, gid: 64000 }, bootTimeoutMs: 5000, nofile: 10000 },
  });
  const events: { from: string | null; status: DynoStatus }[] = [];
  manager.onTransition((from, status) => events.push({ from, status }));
  const result = await manager.recover(dynosDir, async () => driver);
  t.same(result, { adopted: 0, lost: 1, unowned: ['garbage', 'stray'], badRecords: 1 });
  t.same(driver.destroyed.sort(), ['slipway-garbage', 'slipway-stray'], 'containers nobody owns are removed (by the driver that would have made them)');
  await new Promise((r) => setTimeout(r, 100));
  t.same(events.slice(0, 3).map((e) => [e.from, e.status.state]), [[null, 'crashed'], ['crashed', 'starting'], ['starting', 'up']]);
  t.match(events[0]!.status.reason, { code: 'DYNO_CRASHED', message: /gone when the agent restarted/ });
  t.equal(driver.started.length, 1, 'restarted once, in one container');
  const rec = JSON.parse(readFileSync(join(root, 'records', 'app-worker-1.json'), 'utf8'));
  t.equal(rec.record.spec.id, 'app-worker-1', 'the restarted dyno is still recorded');
  await manager.stopAll();
  t.notOk(existsSync(join(root, 'records', 'app-worker-1.json')), 'a dyno that is down is forgotten');
});
