// Dyno records on a real disk that fills up: a 64 KiB tmpfs, filled by another file. A record
// write fails with the kernel's own ENOSPC (told to onWriteError: the host's pressure), the
// record is kept and retried with backoff (on fake time), a record removed meanwhile is never
// written back, the streak is logged once when it begins and once when it ends, and once space
// is freed the disk again holds exactly the records of the dynos that run, readable by the next
// agent process.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynoRecords, RECORD_RETRY_INITIAL_MS, RECORD_RETRY_MAX_MS, type DynoRecord } from '../../../../agent/dynos/dyno-records.js';
import type { DynoSpec } from '../../../../shared/protocol.js';
import { FakeClock } from '../../../helpers/fake-clock.js';
import { captureLog, LEVEL } from '../../../helpers/log-capture.js';

const spec = (id: string): DynoSpec => ({
  id, app: 'app', type: 'web', name: 'web.1', command: 'run', env: { PAD: 'x'.repeat(6000) },
  size: { name: 'standard-1x', memoryMb: 512, cpuShares: 1024, pidsLimit: 256 },
  slug: { url: 'http://127.0.0.1/x.tgz', sha256: 'a'.repeat(64) }, stack: 'busybox',
});

/** Lets the retry's real file I/O finish (it runs on fake timers, real fs). */
async function settle(until: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !until(); i++) await new Promise((r) => setTimeout(r, 5));
}

t.test('ENOSPC from a full tmpfs: the record is retried until it lands, a removed one is never resurrected', async (t) => {
  const mnt = mkdtempSync(join(tmpdir(), 'slipway-records-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', mnt]);
  const built: { records?: DynoRecords } = {};
  t.teardown(() => {
    built.records?.close();
    execFileSync('umount', [mnt]);
    rmdirSync(mnt);
  });
  const dir = join(mnt, 'dynos');
  mkdirSync(dir);
  const clock = new FakeClock();
  const { log, at } = captureLog();
  const told: string[] = [];
  const records = new DynoRecords(dir, { onWriteError: (err) => told.push((err as NodeJS.ErrnoException).code ?? '?'), log, clock });
  built.records = records;
  const running: DynoRecord = { spec: spec('app-web-1'), port: 20001 };
  await records.write(running);

  const filler = join(mnt, 'filler');
  t.throws(() => writeFileSync(filler, Buffer.alloc(128 * 1024)), { code: 'ENOSPC' }, 'the tmpfs is full');
  const stopping: DynoRecord = { ...running, stopping: { graceMs: 1000 } };
  await t.rejects(records.write(stopping), { code: 'ENOSPC' }, 'the write fails as it did (the caller logs it)');
  const gone: DynoRecord = { spec: spec('app-web-2'), port: 20002 };
  await t.rejects(records.write(gone), { code: 'ENOSPC' });
  t.same(told, ['ENOSPC', 'ENOSPC'], 'every failure is told to the pressure');
  t.equal(records.pending, 2);
  await records.remove(gone.spec.id);
  t.equal(records.pending, 1, 'a removed record is no longer retried');

  clock.tick(RECORD_RETRY_INITIAL_MS);
  await settle(() => told.length >= 3);
  clock.tick(2 * RECORD_RETRY_INITIAL_MS);
  await settle(() => told.length >= 4);
  t.ok(told.length >= 4, 'retried, with backoff');
  t.ok(clock.delays.every((d) => d <= RECORD_RETRY_MAX_MS), 'every wait bounded');
  t.same(readdirSync(dir), ['app-web-1.json'], 'failed writes left no temporary files');

  rmSync(filler);
  clock.tick(RECORD_RETRY_MAX_MS);
  await settle(() => records.pending === 0);
  t.equal(records.pending, 0, 'written once space was freed');
  const disk = await new DynoRecords(dir).readAll();
  t.same(disk.records, [stopping], 'the disk holds the newest record of the running dyno, and nothing of the removed one');
  t.same(disk.bad, []);
  t.equal(at(LEVEL.warn).filter((l) => l.msg.startsWith('dyno records cannot be written')).length, 1, 'the streak is logged once');
  t.equal(at(LEVEL.info).filter((l) => l.msg === 'dyno records written again').length, 1, 'and its end once');
});
