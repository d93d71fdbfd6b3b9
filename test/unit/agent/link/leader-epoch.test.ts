// The highest leader epoch the agent was welcomed with, and what it refuses (agent/link/leader-epoch.ts).
import t from 'tap';
import { LeaderEpoch } from '../../../../agent/link/leader-epoch.js';
import { ERROR_CODES } from '../../../../shared/errors.js';
import type { CoordinatorMessage } from '../../../../shared/protocol.js';

const start: CoordinatorMessage = {
  type: 'start_dyno', id: 'cmd-1',
  dyno: {
    id: 'app-web-1', app: 'app', type: 'web', name: 'web.1', size: { name: 'standard-1x', memoryMb: 512, cpuShares: 1024, pidsLimit: 256 },
    command: 'web', env: {}, slug: { url: 'https://slugs.internal/s.tgz', sha256: 'a'.repeat(64) }, stack: 'heroku-24',
  },
};

t.test('welcomes at or above the highest epoch are taken; lower ones are refused', async (t) => {
  const e = new LeaderEpoch();
  t.equal(e.highest, 0);
  t.equal(e.welcome(undefined), true, 'a coordinator without epochs (absent: 0) on a fresh agent');
  t.equal(e.welcome(2), true);
  t.equal(e.highest, 2);
  t.equal(e.welcome(2), true, 'the same leader again (a reconnect)');
  t.equal(e.welcome(1), false, 'a deposed leader');
  t.equal(e.welcome(undefined), false, 'no epoch after one was seen: 0, below');
  t.equal(e.highest, 2, 'a refused welcome does not lower it');
  t.equal(e.welcome(5), true, 'a later leader');
  t.equal(e.highest, 5);
});

t.test("a command on a stale link is refused with COORDINATOR_STALE_EPOCH, naming both epochs", async (t) => {
  const e = new LeaderEpoch();
  e.welcome(3);
  t.equal(e.isStale(2), true);
  t.equal(e.isStale(3), false);
  const refusal = e.refusal(start, 2);
  t.match(refusal, { type: 'result', id: 'cmd-1', ok: false, error: { code: 'COORDINATOR_STALE_EPOCH', retryable: ERROR_CODES.COORDINATOR_STALE_EPOCH.retryable } });
  t.match(refusal && !refusal.ok ? refusal.error.message : '', /epoch 2.*epoch 3/);
  for (const msg of [
    { type: 'stop_dyno', id: 'cmd-2', dynoId: 'app-web-1' },
    { type: 'drain', id: 'cmd-3' }, { type: 'undrain', id: 'cmd-4' },
    { type: 'prefetch_slug', id: 'cmd-5', slug: { url: 'https://slugs.internal/s.tgz', sha256: 'b'.repeat(64) } },
  ] as CoordinatorMessage[]) t.match(e.refusal(msg, 1), { ok: false, error: { code: 'COORDINATOR_STALE_EPOCH' } }, msg.type);
});

t.test('nothing is refused on a current link, and what is not a command is never answered', async (t) => {
  const e = new LeaderEpoch();
  e.welcome(3);
  t.equal(e.refusal(start, 3), undefined, 'the current leader');
  t.equal(e.refusal(start, 4), undefined);
  t.equal(e.refusal({ type: 'ack', seq: 9 }, 1), undefined, 'an ack has nothing to answer');
  t.equal(e.refusal({ type: 'hint', reconnect: { spreadMs: 1 } }, 1), undefined);
  t.equal(e.refusal({ type: 'error', code: 'INTERNAL', message: 'x' }, 1), undefined, 'an error is never answered (no error loops)');
});
