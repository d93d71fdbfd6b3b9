import t from 'tap';
import { takeSystemdEnvironment } from '../../../../agent/host/systemd-notify.js';

t.test('systemd\'s variables leave the environment that runtimes inherit; the notify socket and watchdog are kept for the agent', async (t) => {
  const env: NodeJS.ProcessEnv = {
    PATH: '/usr/bin', NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42',
    LISTEN_FDS: '1', LISTEN_PID: '42', LISTEN_FDNAMES: 'x', INVOCATION_ID: 'abc',
  };
  t.same(takeSystemdEnvironment(env, 42), { notifySocket: '/run/systemd/notify', watchdogUsec: 30_000_000 });
  t.same(env, { PATH: '/usr/bin', INVOCATION_ID: 'abc' }, 'runc would act on NOTIFY_SOCKET: gone');
});

t.test('a watchdog meant for another pid (WATCHDOG_PID of a parent) is not ours; junk is ignored', async (t) => {
  t.same(takeSystemdEnvironment({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '7' }, 42), {});
  t.same(takeSystemdEnvironment({ WATCHDOG_USEC: '30000000' }, 42), { watchdogUsec: 30_000_000 }, 'no WATCHDOG_PID: ours');
  t.same(takeSystemdEnvironment({ WATCHDOG_USEC: 'soon' }, 42), {});
  t.same(takeSystemdEnvironment({ WATCHDOG_USEC: '0' }, 42), {});
  t.same(takeSystemdEnvironment({}, 42), {});
});
