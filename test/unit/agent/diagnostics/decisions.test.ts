// The decision log's ring: ids, the filter by dyno id or name, the limit, and its bound.
import t from 'tap';
import { DecisionLog } from '../../../../agent/diagnostics/decisions.js';

const clock = (start = Date.parse('2026-12-02T10:00:00Z')) => {
  let now = start;
  return { now: () => now, step: (ms: number) => { now += ms; } };
};

t.test('each decision gets the next id and the time, and keeps what it was given', async (t) => {
  const c = clock();
  const log = new DecisionLog(c);
  const a = log.about({ id: 'app-web-1', name: 'web.1', app: 'app' }, 'restart_scheduled', 'restart 2 in 10.0 s', { attempt: 2, delayMs: 10_000 });
  c.step(1000);
  const b = log.record({ kind: 'drain', message: 'host draining (spot_interruption)', data: { cause: 'spot_interruption' } });
  t.same(a, { id: 'd-1', at: '2026-12-02T10:00:00.000Z', kind: 'restart_scheduled', dynoId: 'app-web-1', dyno: 'web.1', app: 'app', message: 'restart 2 in 10.0 s', data: { attempt: 2, delayMs: 10_000 } });
  t.match(b, { id: 'd-2', at: '2026-12-02T10:00:01.000Z', kind: 'drain' });
  t.notOk('dynoId' in b, 'a host-wide decision names no dyno');
  t.same(log.list().map((d) => d.id), ['d-1', 'd-2'], 'oldest first');
});

t.test('the filter matches a dyno by id or by name; limit keeps the newest', async (t) => {
  const log = new DecisionLog(clock());
  for (let i = 1; i <= 5; i++) log.about({ id: `app-web-${i % 2}`, name: `web.${i % 2}`, app: 'app' }, 'kill', `kill ${i}`);
  t.same(log.list({ dyno: 'web.1' }).map((d) => d.message), ['kill 1', 'kill 3', 'kill 5']);
  t.same(log.list({ dyno: 'app-web-0' }).map((d) => d.message), ['kill 2', 'kill 4']);
  t.same(log.list({ dyno: 'web.1', limit: 2 }).map((d) => d.message), ['kill 3', 'kill 5']);
  t.same(log.list({ dyno: 'web.9' }), []);
});

t.test('the ring stays bounded: the oldest go first, ids keep counting', async (t) => {
  const log = new DecisionLog(clock(), 100);
  for (let i = 0; i < 1_000; i++) log.about({ id: 'app-web-1', name: 'web.1', app: 'app' }, 'restart_scheduled', `restart ${i + 1}`, { attempt: i + 1 });
  const kept = log.list();
  t.equal(kept.length, 100, 'never more than its size');
  t.equal(kept[0]!.id, 'd-901');
  t.equal(kept.at(-1)!.id, 'd-1000');
  t.equal(log.total, 1_000, 'the total says how many were recorded');
});
