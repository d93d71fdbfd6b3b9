// The on-call commands' text: the renderers of the endpoint's answers (recorded shapes),
// including the tolerance of an exit record's unknown or missing fields; how a dyno is named;
// how a follow's NDJSON is printed; doctor's lines. (The table and number helpers they use are
// shared/tables.ts, test/unit/shared/tables.test.ts.)
import t from 'tap';
import { renderDynos, renderStatus } from '../../../../../agent/cli/oncall/status.js';
import { renderDecisions, renderExits } from '../../../../../agent/cli/oncall/why.js';
import { resolveDyno } from '../../../../../agent/cli/oncall/dyno-ref.js';
import { followMessage } from '../../../../../agent/cli/oncall/logs.js';
import { renderChecks } from '../../../../../agent/cli/oncall/doctor.js';

const NOW = Date.parse('2026-12-02T15:00:00.000Z');

t.test('status: the recorded /v1/status answer as label/value lines', async (t) => {
  const text = renderStatus({
    agent: { id: 'host-1', hostname: 'h', address: '10.0.0.5', version: '0.1.0', runtime: 'runc' },
    capacity: {
      memory: { totalBytes: 8 * 1024 ** 3, reservedBytes: 1024 ** 3, allocatableBytes: 7 * 1024 ** 3, committedBytes: 1024 ** 3, usedBytes: 2 * 1024 ** 3 },
      cpu: { cores: 4, load1: 0.5 }, dynoCount: 2,
      slugCache: { entries: 1, bytes: 40 * 1024 ** 2, budgetBytes: 20 * 1024 ** 3, freeBytes: 30 * 1024 ** 3, slugs: [] }, accepting: true,
    },
    link: { state: 'ready', connectedSince: '2026-12-02T14:55:00.000Z', reconnects: 1, unackedEvents: 0, lastError: null, journal: { ok: true } },
    dynos: 2, pressure: { accepting: true, code: null, message: null },
  }, NOW);
  t.equal(text, [
    'agent       host-1  version 0.1.0  runtime runc  address 10.0.0.5',
    'link        ready for 5m00s, 1 reconnect, 0 unacked events',
    'memory      1 GiB committed of 7 GiB allocatable (8 GiB total, 1 GiB reserved), 2 GiB used',
    'cpu         4 cores, load 0.50',
    'dynos       2',
    'slug cache  1 slug, 40 MiB of 20 GiB, 30 GiB free on its disk',
    'accepting   yes',
    '',
  ].join('\n'));
  const refusing = renderStatus({ agent: {}, capacity: { accepting: false }, link: { state: 'waiting', lastError: 'ECONNREFUSED' }, dynos: 0, pressure: { code: 'STATE_DIR_FULL', message: 'the disk is full' } }, NOW);
  t.match(refusing, /^link +waiting, 0 reconnects, 0 unacked events, last error: ECONNREFUSED$/m, 'a link that is down says why');
  t.match(refusing, /^accepting +no: STATE_DIR_FULL the disk is full$/m, 'a refusing host says its code');
  t.match(renderStatus({}, NOW), /^agent +\? +version \?/, 'an answer without the expected fields still prints');
});

t.test('dynos: one row per dyno; an empty host says so', async (t) => {
  const text = renderDynos([
    { id: 'a1b2', app: 'shop', type: 'web', name: 'web.1', state: 'up', memoryMb: 512, since: '2026-12-02T14:58:00.000Z', endpoint: { host: '10.0.0.5', port: 20001 }, containerId: 'slipway-a1b2', pid: 4242, network: { address: '100.72.0.2', netns: 'x' }, release: 'v3' },
    { id: 'c3d4', app: 'shop', type: 'worker', name: 'worker.1', state: 'crashed', memoryMb: 512, since: '2026-12-02T14:59:30.000Z', exit: { code: 1, signal: null }, reason: { code: 'DYNO_CRASHED', message: 'x', retryable: true } },
  ], NOW);
  t.equal(text, [
    'NAME      APP   STATE    FOR    MEMORY  PID   ADDRESS     ENDPOINT        RELEASE  REASON        ID',
    'web.1     shop  up       2m00s  512 MB  4242  100.72.0.2  10.0.0.5:20001  v3       -             a1b2',
    'worker.1  shop  crashed  30s    512 MB  -     -           -               -        DYNO_CRASHED  c3d4',
    '',
  ].join('\n'));
  t.equal(renderDynos([], NOW), 'no dynos on this host\n');
});

t.test('why: decisions with their numbers; exits field by field, unknown fields kept, missing ones -', async (t) => {
  const decisions = renderDecisions([
    { id: 'd-1', at: '2026-12-02T14:59:00.000Z', kind: 'restart_scheduled', dynoId: 'a1b2', dyno: 'web.1', app: 'shop', message: 'restart 2 in 10 s', data: { attempt: 2, backoffMs: 10000 } },
    { id: 'd-2', at: '2026-12-02T14:59:30.000Z', kind: 'drain', message: 'spot interruption' },
  ], NOW, true);
  t.equal(decisions, [
    'WHEN       KIND               DYNO   APP   WHY',
    '1m00s ago  restart_scheduled  web.1  shop  restart 2 in 10 s  (attempt=2 backoffMs=10000)',
    '30s ago    drain              -      -     spot interruption',
    '',
  ].join('\n'));
  t.match(renderDecisions([], NOW, true), /no decisions recorded/);
  t.match(renderDecisions(undefined, NOW), /no decisions about this dyno/);
  const exits = renderExits([
    { dynoId: 'a1b2', dyno: 'web.1', app: 'shop', release: 'v3', incarnation: 2, adopted: false, at: '2026-12-02T14:58:00.000Z', cause: 'crashed', code: 137, signal: 'SIGKILL', reason: { code: 'DYNO_OOM_KILLED', message: 'x' }, oomKilled: true, quotaBytes: 512 * 1024 ** 2, peakMemoryBytes: 1024 ** 3, throttledPeriods: 3, restartCount: 1, bindMs: 850, ranMs: 95_000, lines: ['old'] },
    { code: 1, kind: 'R10', lines: ['2026-12-02T14:59:59Z app[web.1]: boom'] },
  ], NOW);
  t.equal(exits, [
    'WHEN       CAUSE    CODE  SIGNAL   REASON           OOM  PEAK              THROTTLED  RESTARTS  BIND    RAN    OTHER',
    '2m00s ago  crashed  137   SIGKILL  DYNO_OOM_KILLED  yes  1 GiB of 512 MiB  3          1         850 ms  1m35s  -',
    '-          -        1     -        -                -    -                 -          -         -       -      kind=R10',
    '',
    'last lines before the latest exit:',
    '  2026-12-02T14:59:59Z app[web.1]: boom',
    '',
  ].join('\n'), 'known fields in columns, an unknown one in OTHER, missing ones -, the newest exit\'s lines below');
  t.equal(renderExits([], NOW), 'no exits recorded\n');
});

t.test('a dyno is named by id, name or APP/name; an ambiguous name is refused naming the apps', async (t) => {
  const dynos = [{ id: 'a1', name: 'web.1', app: 'shop' }, { id: 'b2', name: 'web.1', app: 'blog' }, { id: 'c3', name: 'worker.1', app: 'shop' }];
  t.equal(resolveDyno(dynos, 'c3').id, 'c3');
  t.equal(resolveDyno(dynos, 'worker.1').id, 'c3');
  t.equal(resolveDyno(dynos, 'blog/web.1').id, 'b2');
  t.throws(() => resolveDyno(dynos, 'web.1'), { code: 'CONFIG_INVALID', message: /web\.1 names 2 dynos on this host \(apps shop, blog\)/ });
  t.throws(() => resolveDyno(dynos, 'web.9'), { code: 'DYNO_NOT_FOUND', message: /no dyno web\.9 on this host/ });
  t.throws(() => resolveDyno(dynos, 'shop/worker.2'), { code: 'DYNO_NOT_FOUND' });
});

t.test('logs -f: lines to stdout, drops and the end to stderr; --json passes the NDJSON through', async (t) => {
  t.same(followMessage('{"line":"T app[web.1]: hi"}', false), { out: 'T app[web.1]: hi\n' });
  t.same(followMessage('{"dropped":12}', false), { err: 'slipway-agent: 12 lines dropped: this reader fell behind the dyno\n' });
  t.same(followMessage('{"end":"the dyno is no longer on this host"}', false), { err: 'slipway-agent: the dyno is no longer on this host\n', end: true });
  t.same(followMessage('{"dropped":1}', true), { out: '{"dropped":1}\n' });
  t.same(followMessage('{"end":"x"}', true), { out: '{"end":"x"}\n', end: true });
  t.match(followMessage('nope', false), { err: /not JSON/ });
});

t.test('doctor: status, check and detail in columns', async (t) => {
  t.equal(renderChecks([
    { status: 'ok', check: 'cgroups', detail: 'v1' },
    { status: 'fail', check: 'coordinator.token', detail: 'refused' },
    { status: 'warn', check: 'agent', detail: 'none' },
  ]), 'ok    cgroups            v1\nfail  coordinator.token  refused\nwarn  agent              none\n');
});
