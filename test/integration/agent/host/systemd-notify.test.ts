// The notifier against a real unix datagram socket bound as systemd binds its notify socket
// (test/helpers/notify-socket.ts): what arrives, under which pid, and what a burst becomes.
import t from 'tap';
import { openNotifySocket } from '../../../helpers/notify-socket.js';
import { SystemdNotifier } from '../../../../agent/host/systemd-notify.js';
import { captureLog, LEVEL } from '../../../helpers/log-capture.js';

t.test('READY and STATUS arrive in one datagram sent under the agent\'s own pid (what NotifyAccess=main accepts)', async (t) => {
  const sock = await openNotifySocket();
  t.teardown(() => sock.close());
  const { log } = captureLog();
  const n = new SystemdNotifier({ socket: sock.path, log });
  n.notify({ READY: '1', STATUS: 'dynos: none; link: connecting' });
  const m = await sock.waitFor('READY');
  t.equal(m.pid, process.pid, 'the kernel names this process as the sender, not the systemd-notify child');
  t.same(m.fields, { READY: '1', STATUS: 'dynos: none; link: connecting' });
  await n.settled();
  t.equal(n.sent, 1);
});

t.test('a burst while a send runs is merged: the latest STATUS wins and READY/STOPPING are kept', async (t) => {
  const sock = await openNotifySocket();
  t.teardown(() => sock.close());
  const n = new SystemdNotifier({ socket: sock.path, log: captureLog().log });
  n.notify({ STATUS: 'status 0' });
  for (let i = 1; i <= 20; i++) n.notify({ STATUS: `status ${i}` });
  n.notify({ STOPPING: '1' });
  n.notify({ STATUS: 'status last' });
  await n.settled();
  await sock.waitFor('STATUS', { value: 'status last' });
  t.equal(sock.messages.length, 2, `22 calls became ${sock.messages.length} datagrams: one in flight, one merged`);
  t.same(sock.messages[1]!.fields, { STATUS: 'status last', STOPPING: '1' });
  t.equal(n.sent, 2);
});

t.test('newlines in a value cannot inject another assignment', async (t) => {
  const sock = await openNotifySocket();
  t.teardown(() => sock.close());
  const n = new SystemdNotifier({ socket: sock.path, log: captureLog().log });
  n.notify({ STATUS: 'app x\nREADY=1' });
  const m = await sock.waitFor('STATUS');
  t.same(m.fields, { STATUS: 'app x READY=1' });
});

t.test('without NOTIFY_SOCKET every call is a no-op; a failing sender is logged once per streak and survived', async (t) => {
  const off = new SystemdNotifier({ log: captureLog().log });
  t.equal(off.enabled, false);
  off.notify({ READY: '1' });
  await off.settled();
  t.equal(off.sent, 0);

  const sock = await openNotifySocket();
  t.teardown(() => sock.close());
  const cap = captureLog();
  const broken = new SystemdNotifier({ socket: sock.path, log: cap.log, binary: '/nonexistent/systemd-notify' });
  for (let i = 0; i < 3; i++) {
    broken.notify({ WATCHDOG: '1' });
    await broken.settled();
  }
  t.equal(broken.sent, 0);
  t.equal(cap.at(LEVEL.warn).filter((r) => r.msg === 'systemd notification failed').length, 1, 'three failures, one warning');
  t.equal(sock.messages.length, 0);
});

t.test('after the agent takes systemd\'s variables, a runtime it spawns does not see NOTIFY_SOCKET or the watchdog', async (t) => {
  const { takeSystemdEnvironment } = await import('../../../../agent/host/systemd-notify.js');
  const { execBounded } = await import('../../../../agent/lib/exec.js');
  const saved = { ...process.env };
  t.teardown(() => { process.env = saved; });
  Object.assign(process.env, { NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '30000000', WATCHDOG_PID: String(process.pid), LISTEN_FDS: '2' });
  t.match((await execBounded('/bin/sh', ['-c', 'env'], { timeoutMs: 5000 })).stdout, /NOTIFY_SOCKET=/, 'inherited before');
  t.same(takeSystemdEnvironment(), { notifySocket: '/run/systemd/notify', watchdogUsec: 30_000_000 });
  const env = (await execBounded('/bin/sh', ['-c', 'env'], { timeoutMs: 5000 })).stdout;
  t.notMatch(env, /NOTIFY_SOCKET|WATCHDOG_|LISTEN_/, 'a runc, lxc-* or conmon child sees none of them');
});
