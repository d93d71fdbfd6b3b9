import t from 'tap';
import { judgeLiveness, serviceStatusText, Watchdog } from '../../../../agent/host/watchdog.js';
import { captureLog, LEVEL } from '../../../helpers/log-capture.js';

const PERIOD = 15_000; // WatchdogSec=30s

t.test('liveness holds while the loop delay stays within the check period and supervision ran', async (t) => {
  t.equal(judgeLiveness({ loopDelayMaxMs: 40, supervisionAgeMs: 4000, checkPeriodMs: PERIOD, supervisionPeriodMs: 5000 }).ok, true);
  t.equal(judgeLiveness({ loopDelayMaxMs: PERIOD, supervisionAgeMs: 15_000, checkPeriodMs: PERIOD, supervisionPeriodMs: 5000 }).ok, true, 'both at their bound');
});

t.test('a loop stalled past the check period withholds the ping', async (t) => {
  const v = judgeLiveness({ loopDelayMaxMs: 15_001, supervisionAgeMs: 1000, checkPeriodMs: PERIOD, supervisionPeriodMs: 5000 });
  t.equal(v.ok, false);
  t.match(v.reason, /event loop delayed 15001 ms \(bound 15000 ms\)/);
});

t.test('a supervision round missing for three periods (or one check period, if longer) withholds the ping', async (t) => {
  t.equal(judgeLiveness({ loopDelayMaxMs: 5, supervisionAgeMs: 15_001, checkPeriodMs: PERIOD, supervisionPeriodMs: 5000 }).ok, false);
  t.equal(judgeLiveness({ loopDelayMaxMs: 5, supervisionAgeMs: 20_000, checkPeriodMs: PERIOD, supervisionPeriodMs: 7000 }).ok, true, '3 x 7 s = 21 s bound');
  const v = judgeLiveness({ loopDelayMaxMs: 5, supervisionAgeMs: 40_000, checkPeriodMs: 1000, supervisionPeriodMs: 5000 });
  t.match(v.reason, /no supervision round for 40000 ms \(bound 15000 ms\)/);
});

t.test('the status line counts dynos by state and names the link', async (t) => {
  t.equal(serviceStatusText([], 'connecting', true), 'dynos: none; link: connecting');
  const dynos = [{ state: 'up' }, { state: 'up' }, { state: 'starting' }, { state: 'crashed' }] as const;
  t.equal(serviceStatusText(dynos, 'ready', true), 'dynos: 2 up, 1 starting, 1 crashed; link: ready');
  t.equal(serviceStatusText([{ state: 'stopping' }], 'waiting', false), 'dynos: 1 stopping; link: waiting; not accepting dynos');
});

t.test('the watchdog pings when live, withholds (logging once) when supervision stopped, and pings again', async (t) => {
  const sent: Record<string, string>[] = [];
  const cap = captureLog();
  let supervisedAt: number | undefined = performance.now();
  const w = new Watchdog({
    notifier: { notify: (f) => void sent.push(f) }, watchdogUsec: 2_000_000,
    liveness: { supervisedAt: () => supervisedAt, supervisionPeriodMs: 100 }, status: () => 'x', log: cap.log,
  });
  t.equal(w.checkPeriodMs, 1000, 'WatchdogSec/2');
  t.equal(w.check().ok, true);
  supervisedAt = performance.now() - 5000;
  t.equal(w.check().ok, false);
  t.equal(w.check().ok, false);
  supervisedAt = performance.now();
  t.equal(w.check().ok, true);
  t.same(sent, [{ WATCHDOG: '1' }, { WATCHDOG: '1' }]);
  t.equal(w.withheld, 2);
  t.equal(cap.at(LEVEL.error).filter((r) => r.msg === 'agent liveness failed: watchdog ping withheld').length, 1, 'one error per streak');
  t.equal(cap.at(LEVEL.info).filter((r) => r.msg === 'agent liveness holds again: watchdog pings resumed').length, 1);
});

t.test('a busy event loop (a 300 ms block) makes the next periodic check withhold its ping', async (t) => {
  const sent: Record<string, string>[] = [];
  const w = new Watchdog({
    notifier: { notify: (f) => void sent.push(f) }, watchdogUsec: 400_000,
    liveness: { supervisedAt: () => performance.now(), supervisionPeriodMs: 100 }, status: () => 'x', log: captureLog().log,
  });
  w.start();
  t.teardown(() => w.stop());
  await new Promise((r) => setTimeout(r, 100));
  const end = performance.now() + 300;
  while (performance.now() < end) { /* block the loop */ }
  await new Promise((r) => setTimeout(r, 50));
  t.equal(w.withheld, 1, 'the check right after the block withheld its ping');
  t.equal(w.last?.ok, false);
  t.ok((w.last?.loopDelayMaxMs ?? 0) >= 250, `loop delayed ${w.last?.loopDelayMaxMs} ms, check period 200 ms`);
  t.same(sent[0], { STATUS: 'x' }, 'the status went out at start');
});
