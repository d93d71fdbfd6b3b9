// The built agent as systemd runs it (Type=notify, WatchdogSec=2s), on this host without
// systemd as pid 1: NOTIFY_SOCKET names a real datagram socket bound as systemd binds its own
// (test/helpers/notify-socket.ts). The VM suite (test/vm/) runs the same unit under systemd 252.
import t from 'tap';
import { createServer } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { spawnBin } from '../../helpers/processes.js';
import { getJson } from '../../helpers/http.js';
import { openNotifySocket } from '../../helpers/notify-socket.js';
import { e2eHost } from './fixtures/e2e-host.js';
import { eventually } from '../../helpers/host.js';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

t.test('READY without the coordinator, STATUS with the link, watchdog pings withheld after a stall, STOPPING on SIGTERM', async (t) => {
  const host = await e2eHost(t, 'notify', { 'public/index.html': 'hi\n' });
  const sock = await openNotifySocket();
  t.teardown(() => sock.close());
  const port = await freePort();
  const agent = spawnBin('agent', [
    'serve', '--config', host.configFile, '--coordinator', `ws://127.0.0.1:${port}/v1/agent`, '--token-file', host.tokenFile,
    '--state-dir', host.stateDir, '--address', '127.0.0.1', '--cgroup-parent', host.cgroupParent, '--diagnostics-listen', '127.0.0.1:0',
    '--agent-id', `agent-${host.app}`,
  ], { NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '2000000' });
  host.procs.push(agent);
  const pid = agent.child.pid!;

  // 1. Ready with no coordinator listening: readiness is the local daemon's.
  const ready = await sock.waitFor('READY', { timeoutMs: 30_000 });
  t.equal(ready.pid, pid, 'sent under the agent\'s pid (NotifyAccess=main)');
  t.match(ready.fields.STATUS, /^dynos: none; link: (connecting|waiting)/, 'the status names a link that is not up');
  const started = agent.lines.find((l) => l.msg === 'agent started');
  t.ok(started, 'READY came after the diagnostics listener was up');
  const diagToken = (await readFile(join(host.stateDir, 'agent', 'diagnostics.token'), 'utf8')).trim();
  const status = await getJson(`${started!.diagnosticsUrl as string}/v1/status`, { authorization: `Bearer ${diagToken}` });
  t.not(status.link.state, 'ready', 'the coordinator link is still down');
  const before = sock.messages.filter((m) => m.fields.EXTEND_TIMEOUT_USEC !== undefined && m.at <= ready.at);
  t.ok(before.length >= 1, 'start timeout extended while re-adopting');

  // 2. Pings every WatchdogSec/2 = 1 s.
  const from = sock.messages.length;
  await eventually('three watchdog pings', () => sock.messages.slice(from).filter((m) => m.fields.WATCHDOG === '1').length >= 3 || undefined, 10_000);

  // 3. A stall (SIGSTOP past WatchdogSec): nothing is sent while stopped, and the first check
  // after it sees the loop delayed past its bound and withholds that ping.
  process.kill(pid, 'SIGSTOP');
  const stoppedAt = sock.messages.length;
  await new Promise((r) => setTimeout(r, 2500));
  t.equal(sock.messages.length, stoppedAt, 'a stopped agent sends nothing: systemd\'s watchdog fires');
  process.kill(pid, 'SIGCONT');
  const withheld = await agent.waitFor('agent liveness failed: watchdog ping withheld', 10_000);
  t.match(withheld.reason, /event loop delayed \d+ ms \(bound 1000 ms\)/);
  const resumedFrom = sock.messages.length;
  await sock.waitFor('WATCHDOG', { from: resumedFrom, timeoutMs: 5000 });
  t.ok(agent.lines.some((l) => l.msg === 'agent liveness holds again: watchdog pings resumed'), 'pings resumed once the loop is live');

  // 4. Shutdown.
  const stopFrom = sock.messages.length;
  agent.child.kill('SIGTERM');
  const stopping = await sock.waitFor('STOPPING', { from: stopFrom, timeoutMs: 10_000 });
  t.equal(stopping.fields.STATUS, 'stopping: dynos keep running');
});
