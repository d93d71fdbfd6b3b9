// The developer CLI's pure parts: scale arguments, the logs query, and what a person reads
// (ps grouped by process type as Heroku prints it, the apps table, logs --json).
import t from 'tap';
import { logLineJson, logsQuery, parseEnvArgs, parseScaleArgs, renderApps, renderPs, renderScale } from '../../../cli/commands.js';

t.test('scale arguments', async (t) => {
  t.same(parseScaleArgs(['web=3', 'worker=1:standard-2x', 'clock:performance-m']), [
    { type: 'web', quantity: 3 },
    { type: 'worker', quantity: 1, size: 'standard-2x' },
    { type: 'clock', size: 'performance-m' },
  ]);
  for (const bad of ['web', 'web=', 'web=-1', '=3', 'web=two', 'web=1:']) {
    t.throws(() => parseScaleArgs([bad]), { code: 'CONFIG_INVALID' }, `${bad} is refused`);
  }
  t.throws(() => parseScaleArgs([]), { code: 'CONFIG_INVALID', message: /TYPE=QUANTITY/ });
});

t.test('the logs query', async (t) => {
  t.equal(logsQuery({ lines: 100, tail: false }), 'lines=100');
  t.equal(logsQuery({ lines: 5, tail: true, dyno: 'web.1', source: 'app' }), 'lines=5&dyno=web.1&source=app&tail=1');
  t.equal(logsQuery({ lines: 5, tail: true }, 0), 'lines=0&tail=1', 'a tail that dials again asks for new lines only');
});

t.test('ps groups dynos under their process type, with state, reason and age', async (t) => {
  const now = Date.parse('2026-12-03T10:05:00.000Z');
  const text = renderPs([
    { id: 'a', name: 'web.1', type: 'web', state: 'up', since: '2026-12-03T10:00:00.000Z', agentId: 'h1', size: 'standard-1x', command: 'httpd -f -p $PORT' },
    { id: 'b', name: 'web.2', type: 'web', state: 'crashed', since: '2026-12-03T10:04:00.000Z', agentId: 'h2', size: 'standard-1x', command: 'httpd -f -p $PORT', reason: { code: 'DYNO_CRASHED', message: 'exit 1' } },
    { id: 'c', name: 'worker.1', type: 'worker', state: 'starting', since: '2026-12-03T10:04:59.000Z', agentId: 'h1', size: 'standard-2x', command: 'work' },
  ], now);
  t.equal(text, [
    '=== web (standard-1x): httpd -f -p $PORT (2)',
    'web.1: up 2026-12-03T10:00:00.000Z (~ 5m00s ago)',
    'web.2: crashed (DYNO_CRASHED) 2026-12-03T10:04:00.000Z (~ 1m00s ago)',
    '',
    '=== worker (standard-2x): work (1)',
    'worker.1: starting 2026-12-03T10:04:59.000Z (~ 1s ago)',
    '', '',
  ].join('\n'));
  t.match(renderPs([]), /No dynos/);
});

t.test('apps and scale read as a person expects', async (t) => {
  t.equal(renderApps([{ name: 'shop', formation: [{ type: 'web', quantity: 2, size: 'standard-1x' }, { type: 'worker', quantity: 0, size: 'standard-2x' }], dynos: { up: 2, total: 2 } }]),
    'APP   FORMATION                               DYNOS UP\nshop  web=2:standard-1x worker=0:standard-2x  2/2\n');
  t.equal(renderScale([{ type: 'web', quantity: 3, dynos: [] }], new Map([['web', 'standard-1x']])), 'Scaling dynos... done, now running web at 3:standard-1x\n');
});

t.test('logs --json splits a shipped line', async (t) => {
  t.same(JSON.parse(logLineJson('2026-12-03T10:00:00.000Z app[web.1]: GET / 200')), { time: '2026-12-03T10:00:00.000Z', source: 'app', dyno: 'web.1', message: 'GET / 200' });
  t.same(JSON.parse(logLineJson('odd line')), { message: 'odd line' });
});

t.test('run --env words', async (t) => {
  t.same(parseEnvArgs(['A=1', 'B_2=x=y', 'EMPTY=']), { A: '1', B_2: 'x=y', EMPTY: '' });
  for (const bad of ['=1', '1A=x', 'NOEQUALS', 'A-B=1']) t.throws(() => parseEnvArgs([bad]), { code: 'CONFIG_INVALID' }, `${bad} is refused`);
});
