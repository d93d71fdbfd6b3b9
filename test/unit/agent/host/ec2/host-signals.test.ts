// The poller of EC2's host signals against the fake metadata service: a spot notice or a
// Terminated lifecycle state drains once and is notified once, a rebalance recommendation is
// notified without draining, bad JSON is a logged code and never a crash, failures are logged
// once per streak, and the notices already sent survive a restart (no repeat).
import t from 'tap';
import { join } from 'node:path';
import { HostSignals } from '../../../../../agent/host/ec2/host-signals.js';
import { ImdsClient } from '../../../../../agent/host/ec2/imds.js';
import type { HostNotice } from '../../../../../shared/protocol.js';
import { startFakeImds, type FakeImds } from '../../../../helpers/fake-imds.js';
import { tempDir } from '../../../../helpers/host.js';
import { captureLog, LEVEL } from '../../../../helpers/log-capture.js';

async function setup(t: { teardown(fn: () => unknown): void }, fake?: FakeImds) {
  const imds = fake ?? await startFakeImds(t);
  const dir = await tempDir(t);
  const capture = captureLog();
  const notified: HostNotice[] = [];
  const drained: HostNotice[] = [];
  const make = () => new HostSignals({
    client: new ImdsClient({ endpoint: imds.url, requestTimeoutMs: 300, tokenTimeoutMs: 300 }), log: capture.log, pollMs: 50,
    stateFile: join(dir, 'host-notices.json'), notify: (n) => notified.push(n), interrupted: (n) => drained.push(n),
  });
  return { imds, signals: make(), make, notified, drained, capture };
}

t.test('nothing to say: every path 404, no notice, no drain', async (t) => {
  const s = await setup(t);
  t.equal(await s.signals.poll(), true);
  t.same(s.notified, []);
  t.same(s.drained, []);
  t.same(s.signals.notices(), []);
  t.equal(s.imds.counts.withoutToken, 0);
});

t.test('a spot notice drains once and is notified once, with its deadline and action', async (t) => {
  const s = await setup(t);
  const deadline = new Date(Date.now() + 120_000);
  s.imds.spotNotice('terminate', deadline);
  for (let i = 0; i < 3; i++) await s.signals.poll();
  t.equal(s.drained.length, 1, 'drained once');
  t.equal(s.notified.length, 1, 'one event for one notice, not one per poll');
  t.match(s.notified[0], { notice: 'spot_interruption', action: 'terminate', deadline: deadline.toISOString().replace(/\.\d{3}Z$/, 'Z') });
  t.equal(s.signals.interrupting, true);
  s.imds.spotAction = undefined;
  await s.signals.poll();
  t.equal(s.signals.interrupting, true, 'a path that answers 404 again does not take the interruption back');
  t.same(s.signals.notices().map((n) => n.notice), ['spot_interruption']);
});

t.test('an Auto Scaling Terminated state drains; InService does not', async (t) => {
  const s = await setup(t);
  s.imds.lifecycleState = 'InService';
  await s.signals.poll();
  t.same(s.drained, []);
  s.imds.lifecycleState = 'Terminated';
  await s.signals.poll();
  await s.signals.poll();
  t.equal(s.drained.length, 1);
  t.same(s.notified.map((n) => [n.notice, n.deadline]), [['terminating', undefined]]);
});

t.test('a rebalance recommendation is notified and listed, without draining; a new one again', async (t) => {
  const s = await setup(t);
  s.imds.rebalance = JSON.stringify({ noticeTime: '2026-12-02T05:10:00Z' });
  await s.signals.poll();
  await s.signals.poll();
  t.same(s.drained, [], 'no drain');
  t.same(s.notified.map((n) => [n.notice, n.noticeTime]), [['rebalance', '2026-12-02T05:10:00Z']]);
  t.same(s.signals.notices().map((n) => n.notice), ['rebalance']);
  s.imds.rebalance = JSON.stringify({ noticeTime: '2026-12-02T05:20:00Z' });
  await s.signals.poll();
  t.equal(s.notified.length, 2, 'a distinct recommendation is a new notice');
  s.imds.rebalance = undefined;
  await s.signals.poll();
  t.same(s.signals.notices(), [], 'gone from the capacity report once EC2 no longer shows it');
});

t.test('a restart neither repeats a notice nor forgets the drain', async (t) => {
  const s = await setup(t);
  s.imds.spotNotice('stop', new Date(Date.now() + 120_000));
  s.imds.rebalance = JSON.stringify({ noticeTime: '2026-12-02T05:10:00Z' });
  await s.signals.poll();
  t.equal(s.notified.length, 2);
  const again = s.make();
  await again.poll();
  t.equal(s.notified.length, 2, 'the restarted poller sends nothing it sent before');
  t.equal(s.drained.length, 2, 'but it drains the new process again');
  t.same(again.notices().map((n) => n.notice), ['spot_interruption', 'rebalance'], 'and reports both');
});

t.test('bad JSON and failures: a stable code, logged once per streak, never a crash', async (t) => {
  const s = await setup(t);
  s.imds.spotAction = '<html>not json';
  t.equal(await s.signals.poll(), false);
  t.equal(await s.signals.poll(), false);
  s.imds.spotAction = JSON.stringify({ action: 'explode', time: 'soon' });
  t.equal(await s.signals.poll(), false);
  const warns = s.capture.at(LEVEL.warn).filter((r) => r.source === 'spot');
  t.equal(warns.length, 1, 'one line for the streak');
  t.equal(warns[0]!.code, 'IMDS_BAD_RESPONSE');
  t.same(s.drained, [], 'nothing it could not read drains the host');
  s.imds.spotAction = undefined;
  t.equal(await s.signals.poll(), true);
  t.equal(s.capture.at(LEVEL.info).filter((r) => r.msg === 'instance metadata answers again').length, 1);
  s.imds.silent = true;
  const started = Date.now();
  t.equal(await s.signals.poll(), false, 'a silent service: the round ends at its bound');
  t.ok(Date.now() - started < 2000);
  t.equal(s.capture.at(LEVEL.warn).filter((r) => r.code === 'IMDS_TIMEOUT').length, 3, 'one line per path');
});

t.test('start() polls on its own until stop()', async (t) => {
  const s = await setup(t);
  s.signals.start();
  t.teardown(() => s.signals.stop());
  s.imds.spotNotice('terminate', new Date(Date.now() + 120_000));
  const until = Date.now() + 3000;
  while (s.drained.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  t.equal(s.drained.length, 1, 'noticed within a few polls');
  s.signals.stop();
  const n = s.imds.counts.gets;
  await new Promise((r) => setTimeout(r, 200));
  t.equal(s.imds.counts.gets, n, 'no poll after stop()');
});
