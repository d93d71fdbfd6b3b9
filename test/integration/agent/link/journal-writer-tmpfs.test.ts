// The journal writer on a real disk that fills up: a 64 KiB tmpfs, filled by another file.
// Appends and replaces fail with the kernel's own ENOSPC (a torn line included), the writer
// keeps trying (on fake time), leaves no temporary files behind, and once space is freed the
// file again holds every unacked event, readable by the next agent process.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventJournal } from '../../../../agent/link/event-journal.js';
import { JOURNAL_RETRY_MAX_MS, journaledOutbox, type JournalWriter } from '../../../../agent/link/journal-writer.js';
import type { DynoStatus } from '../../../../shared/protocol.js';
import { FakeClock } from '../../../helpers/fake-clock.js';
import { quietLogger } from '../../../helpers/host.js';

const dyno = (n: number): DynoStatus => ({ id: `d${n}`, app: 'app1', type: 'web', name: `web.${n}`, state: 'up', memoryMb: 512, since: new Date(0).toISOString() });

t.test('ENOSPC from a full tmpfs: retried, no temporary files left, nothing lost once space is freed', async (t) => {
  const mnt = mkdtempSync(join(tmpdir(), 'slipway-journal-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', mnt]);
  const built: { writer?: JournalWriter } = {};
  t.teardown(() => {
    built.writer?.close(); // its last write lands on the tmpfs, never in the directory under it
    execFileSync('umount', [mnt]);
    rmdirSync(mnt);
  });
  const file = join(mnt, 'events.jsonl');
  const clock = new FakeClock();
  const { outbox, writer } = journaledOutbox(EventJournal.load(file), { log: quietLogger(), clock, random: () => 1 });
  built.writer = writer;
  outbox.push(null, dyno(0));
  clock.tick(0);
  t.equal(writer.status().ok, true);

  // Fill what is left of the tmpfs.
  const filler = join(mnt, 'filler');
  t.throws(() => writeFileSync(filler, Buffer.alloc(128 * 1024)), { code: 'ENOSPC' }, 'the tmpfs is full');
  // ~250 bytes an event: 60 of them need pages the tmpfs no longer has.
  for (let n = 1; n <= 60; n++) outbox.push(null, dyno(n));
  clock.tick(0);
  t.equal(writer.status().ok, false);
  t.match(writer.status().lastError, /ENOSPC/);
  clock.tick(5 * JOURNAL_RETRY_MAX_MS);
  t.ok(writer.status().failedWrites >= 3, 'retried');
  t.same(readdirSync(mnt).sort(), ['events.jsonl', 'filler'], 'failed replaces left no temporary files');

  rmSync(filler);
  clock.tick(JOURNAL_RETRY_MAX_MS);
  t.equal(writer.status().ok, true, 'written again once space was freed');
  const disk = EventJournal.load(file).state;
  t.equal(disk.skipped, 0, 'no torn line');
  t.same(disk.pending.map((e) => e.seq), Array.from({ length: 61 }, (_, i) => i + 1), 'every event, in order');
});
