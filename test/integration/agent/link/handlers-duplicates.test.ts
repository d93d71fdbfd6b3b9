// Duplicate command ids over a real link: the agent's real session and command handlers over
// a DynoManager with the fake driver, a real ws server playing the coordinator. A command
// resent under the same id (as a coordinator does after a reconnect) gets the stored result
// and is never executed twice; a new id for the same dyno is answered with the existing one.
import t from 'tap';
import { buildHandlers } from '../../../../agent/link/handlers/index.js';
import { EventOutbox } from '../../../../agent/link/outbox.js';
import type { Result } from '../../../../shared/protocol.js';
import { managerSetup, spec } from '../../../helpers/fake-manager.js';
import { playCoordinator, startSession, until } from './fixtures/link.js';

t.test('a repeated command id gets the stored result, never a second execution', async (t) => {
  const m = managerSetup(t);
  const outbox = new EventOutbox();
  const handlers = buildHandlers({ manager: m.manager, outbox, slugs: { prefetch: () => ({ sha256: 'a'.repeat(64), cached: true }) } as never });
  const start = { type: 'start_dyno', id: 'cmd-start-1', dyno: spec(1) };
  const stop = { type: 'stop_dyno', id: 'cmd-stop-1', dynoId: 'app-worker-1', graceMs: 100 };
  // Each repeat comes after the state moved on, so a second execution would answer differently
  // from the stored result (start: `up` instead of `starting`; stop: DYNO_NOT_FOUND).
  const c = await playCoordinator(t, async (link) => {
    link.ws.send(JSON.stringify(start));
    await m.until('app-worker-1', 'up');
    link.ws.send(JSON.stringify(start));
    link.ws.send(JSON.stringify({ ...start, id: 'cmd-start-2' }));
    link.ws.send(JSON.stringify(stop));
    await m.until('app-worker-1', 'down');
    link.ws.send(JSON.stringify(stop));
    link.ws.send(JSON.stringify({ ...stop, id: 'cmd-stop-2' }));
  });
  startSession(t, c.url, { handlers, outbox });
  const link = await until('the link', () => c.links[0]);
  const results = await until('six results', () => {
    const r = link.messages.filter((x): x is Result => x.type === 'result');
    return r.length >= 6 ? r : undefined;
  }, 10_000);
  t.match(results[0], { id: 'cmd-start-1', ok: true, dyno: { id: 'app-worker-1', state: 'starting' } });
  t.same(results[1], results[0], 'the repeated start_dyno gets the stored result (starting), though the dyno is up by now');
  t.match(results[2], { id: 'cmd-start-2', ok: true, dyno: { id: 'app-worker-1', state: 'up' } }, 'a new id executes: the same spec is answered with the existing dyno');
  t.match(results[3], { id: 'cmd-stop-1', ok: true, dyno: { state: 'stopping' } });
  t.same(results[4], results[3], 'the repeated stop_dyno gets the stored result, though the dyno is gone');
  t.match(results[5], { id: 'cmd-stop-2', ok: false, error: { code: 'DYNO_NOT_FOUND', retryable: false } }, 'a new id executes, with a stable error code');
  t.equal(m.driver.started.filter((x) => x.dynoId === 'app-worker-1').length, 1, 'the dyno was started once');
  t.equal(m.events.filter((e) => e.id === 'app-worker-1' && e.state === 'stopping').length, 1, 'and stopped once');
});
