// The link's owner with a journal that fails on purpose: a dyno's transitions (a crash among
// them) reach the outbox at once, the restart happens, and the disk is touched only after the
// transition, never inside it. The dynos are a real DynoManager over the fake driver; the link
// is never dialled (the session's own tests cover the wire).
import t from 'tap';
import { join } from 'node:path';
import { AgentLink } from '../../../../agent/link/agent-link.js';
import { EventJournal } from '../../../../agent/link/event-journal.js';
import { JOURNAL_RETRY_MAX_MS } from '../../../../agent/link/journal-writer.js';
import { FailingJournalFiles } from '../../../helpers/failing-journal-files.js';
import { FakeClock } from '../../../helpers/fake-clock.js';
import { managerSetup, spec } from '../../../helpers/fake-manager.js';
import { tempDir } from '../../../helpers/host.js';
import { captureLog, LEVEL } from '../../../helpers/log-capture.js';
import type { DynoStateEvent } from '../../../../shared/protocol.js';

async function setup(t: { teardown(fn: () => unknown): void }) {
  const m = managerSetup(t);
  const file = join(await tempDir(t), 'agent', 'events.jsonl');
  const files = new FailingJournalFiles();
  const clock = new FakeClock();
  const logged = captureLog();
  const link = new AgentLink({
    dial: { url: 'ws://127.0.0.1:9/never-dialled', token: 'unused' },
    journalFile: file, journalFiles: files, journalClock: clock,
    identity: { id: 'agent-1', hostname: 'agent-1.internal', address: '127.0.0.1', version: 'test', runtime: 'runc' },
    capacity: () => Promise.reject(new Error('not dialled')),
    manager: m.manager, slugs: { has: () => true, ensure: async () => undefined }, log: logged.log,
  });
  t.teardown(async () => {
    await m.manager.stopAll(100);
    await link.close();
  });
  m.manager.onTransition(link.transition);
  return { ...m, file, files, clock, logged, link };
}

async function eventually(what: string, probe: () => boolean): Promise<void> {
  const end = Date.now() + 5_000;
  while (!probe()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

t.test('every journal write fails: the crash is still queued and the dyno restarted', async (t) => {
  const s = await setup(t);
  s.files.failAll('EIO');
  s.manager.start(spec(1));
  await s.until('app-worker-1', 'up');
  s.driver.exit('app-worker-1', { code: 1, signal: null, oomKilled: false });
  await eventually('the restarted dyno to be up', () => s.events.filter((e) => e.state === 'up').length === 2);
  t.same(s.link.unackedEvents().map((e) => [e.seq, (e.event as DynoStateEvent).from, (e.event as DynoStateEvent).dyno.state]), [
    [1, null, 'starting'], [2, 'starting', 'up'], [3, 'up', 'crashed'], [4, 'crashed', 'starting'], [5, 'starting', 'up'],
  ], 'every transition is in the outbox, numbered, in order');
  t.equal(s.files.calls.append + s.files.calls.replace, 0, 'no transition touched the disk');

  s.clock.tick(0);
  const journal = s.link.status().journal!;
  t.equal(journal.ok, false);
  t.match(journal.lastError, /EIO/);
  t.equal(journal.unwritten, 5);
  t.equal(s.link.status().unackedEvents, 5);
  s.clock.tick(10 * 60_000);
  t.equal(s.logged.at(LEVEL.error).filter((r) => /event journal/.test(r.msg)).length, 1, 'logged once for the streak');

  s.files.failAll(undefined);
  s.clock.tick(JOURNAL_RETRY_MAX_MS);
  t.same({ ...s.link.status().journal, failedWrites: 0 }, { ok: true, failingSince: null, lastError: null, unwritten: 0, failedWrites: 0 });
  const disk = EventJournal.load(s.file).state;
  t.same(disk.pending.map((e) => e.seq), [1, 2, 3, 4, 5], 'an agent restart now would resend all of them');
  t.equal(disk.epoch, s.link.epoch);
});

t.test('the journal is written after the transition, not inside it', async (t) => {
  const s = await setup(t);
  s.clock.tick(0);
  const before = s.files.calls.append + s.files.calls.replace;
  s.manager.start(spec(2));
  t.equal(s.link.unackedEvents().length, 1, 'starting is queued at once');
  t.equal(s.files.calls.append + s.files.calls.replace, before, 'and not yet written');
  s.clock.tick(0);
  t.same(EventJournal.load(s.file).state.pending.map((e) => (e.event as DynoStateEvent).dyno.state), ['starting']);
  t.equal(s.link.status().journal!.ok, true);
});
