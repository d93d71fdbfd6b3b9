// The agent as a systemd citizen on a systemd 252 + cgroup v2 host (the guest of
// scripts/vm/run.sh), with the unit file an operator installs (systemd/slipway-agent.service):
// Type=notify readiness and status, the watchdog, restarts that keep the dynos (same containers
// and pids, re-adopted), a stalled agent restarted by the watchdog while its dynos run on, and
// `systemctl stop` leaving dynos running. Also the evidence behind the cgroup layout
// (docs/architecture.md, "Under systemd"): a delegated unit whose cgroup has controllers
// enabled for children cannot take its main process back after a restart on systemd 252.
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { tempDir } from '../helpers/host.js';
import { getJson, http } from '../helpers/http.js';
import { makeSlug, serveSlugs } from '../helpers/slugs.js';
import {
  AGENT_UNIT, assertProductionLikeHost, diagnosticsToken, guestAgentConfig, guestMs, installAgentUnit, journalLines,
  startGuestCoordinator, systemctl, unitProperties, waitUntil,
} from './helpers.js';

/** The guest's watchdog period: 10 s between checks. Under TCG the agent's event loop is far
 * slower than on a host, but never stalls for seconds while it is healthy. */
const WATCHDOG_SEC = 20;

interface DiagDyno { id: string; name: string; state: string; pid?: number; containerId?: string }

/** The agent's diagnostics, found through its last "agent started" journal line (a restarted
 * agent listens on a new port). */
async function diagnostics(stateDir: string, afterPid?: number): Promise<{ dynos(): Promise<DiagDyno[]>; status(): Promise<any> }> {
  const started = await waitUntil('"agent started" from the current agent', async () => {
    const lines = (await journalLines(AGENT_UNIT)).filter((l) => l.json?.msg === 'agent started' && (afterPid === undefined || l.json.pid === afterPid));
    return lines.at(-1)?.json;
  }, guestMs(4_000), 500);
  const url = started.diagnosticsUrl as string;
  const auth = { authorization: `Bearer ${await diagnosticsToken(stateDir)}` };
  return { dynos: async () => (await getJson(`${url}/v1/dynos`, auth)) as DiagDyno[], status: async () => getJson(`${url}/v1/status`, auth) };
}

const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));

t.test('Type=notify with a watchdog: ready, status, restarts and a watchdog kill keep the dynos; stop leaves them running', async (t) => {
  assertProductionLikeHost(t);
  const dir = await tempDir(t, 'slipway-vm-notify-');
  const coordinator = await startGuestCoordinator(t, dir);
  const agent = await guestAgentConfig(t, dir, coordinator, { stopGraceMs: 3_000 });
  await installAgentUnit(t, agent.file, `[Service]\nWatchdogSec=${WATCHDOG_SEC}s\n`);

  // 1. `systemctl start` returns when the agent sent READY=1 (Type=notify): by then the unit is
  // active and its status line is the agent's.
  await systemctl('start', AGENT_UNIT);
  let props = await unitProperties(AGENT_UNIT, ['ActiveState', 'SubState', 'Type', 'NotifyAccess', 'WatchdogUSec', 'StatusText', 'MainPID', 'NRestarts']);
  t.match(props, { ActiveState: 'active', SubState: 'running', Type: 'notify', NotifyAccess: 'main', WatchdogUSec: `${WATCHDOG_SEC}s` }, 'active once READY=1 arrived');
  t.match(props.StatusText, /^dynos: none; link: /, `systemd shows the agent's status: ${props.StatusText}`);
  const firstPid = Number(props.MainPID);
  const env = readFileSync(`/proc/${firstPid}/environ`, 'utf8');
  t.match(env, /NOTIFY_SOCKET=/, 'systemd handed the agent its notify socket');
  t.match(env, /WATCHDOG_USEC=20000000/, 'and its watchdog');

  // Two web dynos.
  const slug = await makeSlug(dir, { 'public/index.html': 'hi\n' });
  const slugs = await serveSlugs({ 'app.tgz': slug.bytes });
  t.teardown(() => slugs.close());
  const app = `vw${agent.agentId.slice(-8)}`;
  const formation = (quantity: number) => ({ quantity, size: 'standard-1x', slug: { url: slugs.url('app.tgz'), sha256: slug.sha256 }, env: {}, command: 'exec httpd -f -p $PORT -h /app/public' });
  t.teardown(async () => { await http('PUT', `${coordinator.apiUrl}/apps/${app}/formation/web`, formation(0)).catch(() => undefined); });
  t.equal((await http('PUT', `${coordinator.apiUrl}/apps/${app}/formation/web`, formation(2))).status, 200);
  let diag = await diagnostics(agent.stateDir, firstPid);
  const before = await waitUntil('two dynos up', async () => {
    const d = await diag.dynos();
    return d.length === 2 && d.every((x) => x.state === 'up' && (x.pid ?? 0) > 0) ? d : undefined;
  }, guestMs(6_000), 1_000);
  const status = await waitUntil('the status line to count them', async () => {
    const s = (await unitProperties(AGENT_UNIT, ['StatusText'])).StatusText;
    return s === 'dynos: 2 up; link: ready' ? s : undefined;
  }, guestMs(1_000), 500);
  t.equal(status, 'dynos: 2 up; link: ready', 'STATUS= follows the dynos and the link');
  const sameDynos = async (what: string) => {
    const after = await waitUntil(`${what}: both dynos re-adopted`, async () => {
      const d = await diag.dynos();
      return d.length === 2 && d.every((x) => x.state === 'up') ? d : undefined;
    }, guestMs(4_000), 1_000);
    for (const b of before) {
      const a = after.find((x) => x.id === b.id);
      t.same(a && { containerId: a.containerId, pid: a.pid }, { containerId: b.containerId, pid: b.pid }, `${what}: ${b.name} kept its container and pid`);
    }
  };

  // 2. The watchdog is fed: systemd's timestamp of the last WATCHDOG=1 moves.
  const wd1 = Number((await unitProperties(AGENT_UNIT, ['WatchdogTimestampMonotonic'])).WatchdogTimestampMonotonic);
  const wd2 = await waitUntil('a later watchdog ping', async () => {
    const v = Number((await unitProperties(AGENT_UNIT, ['WatchdogTimestampMonotonic'])).WatchdogTimestampMonotonic);
    return v > wd1 ? v : undefined;
  }, (WATCHDOG_SEC / 2 + 10) * 1000, 1_000);
  t.ok(wd2 > wd1, `watchdog pinged again after ${((wd2 - wd1) / 1e6).toFixed(1)} s (every WatchdogSec/2 = ${WATCHDOG_SEC / 2} s)`);

  // 3. systemctl restart: a new agent process, the same containers and pids.
  await systemctl('restart', AGENT_UNIT);
  props = await unitProperties(AGENT_UNIT, ['ActiveState', 'MainPID', 'NRestarts']);
  const secondPid = Number(props.MainPID);
  t.not(secondPid, firstPid, 'a new agent process');
  t.equal(props.ActiveState, 'active');
  diag = await diagnostics(agent.stateDir, secondPid);
  await sameDynos('systemctl restart');
  for (const b of before) t.ok(alive(b.pid!), `${b.name}'s process ran through the restart`);

  // 4. A stalled agent: SIGSTOP past WatchdogSec. systemd's watchdog fires and restarts it
  // (SIGABRT, then the restart); the dynos run on and the new agent takes them back.
  const restartsBefore = Number(props.NRestarts);
  process.kill(secondPid, 'SIGSTOP');
  const stoppedAt = Date.now();
  const third = await waitUntil('systemd to restart the stalled agent', async () => {
    const p = await unitProperties(AGENT_UNIT, ['MainPID', 'NRestarts', 'ActiveState']);
    return Number(p.NRestarts) > restartsBefore && Number(p.MainPID) > 0 && Number(p.MainPID) !== secondPid && p.ActiveState === 'active' ? p : undefined;
  }, (WATCHDOG_SEC + 60) * 1000, 1_000);
  const tookS = (Date.now() - stoppedAt) / 1000;
  t.ok(tookS >= WATCHDOG_SEC - 1, `restarted ${tookS.toFixed(1)} s after the stall, not before WatchdogSec (${WATCHDOG_SEC} s)`);
  const journal = (await journalLines(AGENT_UNIT)).map((l) => l.raw);
  t.ok(journal.some((l) => /Watchdog timeout/.test(l)), 'the journal says the watchdog fired');
  for (const b of before) t.ok(alive(b.pid!), `${b.name} kept running while its agent was stalled and killed`);
  diag = await diagnostics(agent.stateDir, Number(third.MainPID));
  await sameDynos('watchdog restart');

  // 5. systemctl stop: the agent goes, the dynos stay (KillMode=process; dynos are not in the
  // unit's cgroup); the next start takes them back.
  await systemctl('stop', AGENT_UNIT);
  t.equal((await unitProperties(AGENT_UNIT, ['ActiveState'])).ActiveState, 'inactive');
  const stopLines = (await journalLines(AGENT_UNIT)).filter((l) => l.json?.msg === 'agent shutting down');
  t.match(stopLines.at(-1)?.json, { signal: 'SIGTERM', stopDynos: false }, 'the agent shut down on SIGTERM, leaving its dynos');
  for (const b of before) t.ok(alive(b.pid!), `${b.name} runs with no agent`);
  await systemctl('start', AGENT_UNIT);
  diag = await diagnostics(agent.stateDir, Number((await unitProperties(AGENT_UNIT, ['MainPID'])).MainPID));
  await sameDynos('stop and start');
});

t.test('why dynos live outside the unit: a delegated unit whose cgroup has controllers enabled for children cannot restart on systemd 252', async (t) => {
  assertProductionLikeHost(t);
  const unit = 'slipway-delegate-probe.service';
  const cg = `/sys/fs/cgroup/system.slice/${unit}`;
  // The layout we did not choose: the main process moves itself into a leaf, enables the pids
  // controller for the unit's children and leaves a process in a child cgroup (as a dyno would
  // be), under KillMode=process like the agent's unit.
  const script = [
    'set -ex', `cd ${cg}`, 'mkdir -p main dyno', 'echo $$ > main/cgroup.procs', 'echo +pids > cgroup.subtree_control',
    'sleep 100000 &', 'echo $! > dyno/cgroup.procs', 'exec sleep 100000',
  ].join('\n');
  const file = `/etc/systemd/system/${unit}`;
  // A script file, not `sh -c`: systemd would expand `$$` and `$!` on the ExecStart line.
  await mkdir('/run/slipway-probe', { recursive: true });
  await writeFile('/run/slipway-probe/probe.sh', `${script}\n`, { mode: 0o755 });
  await writeFile(file, '[Service]\nType=exec\nDelegate=yes\nKillMode=process\nExecStart=/bin/sh /run/slipway-probe/probe.sh\n');
  t.teardown(async () => {
    await systemctl('stop', unit).catch(() => undefined);
    for (const sub of ['dyno', 'main']) {
      const procs = existsSync(`${cg}/${sub}/cgroup.procs`) ? readFileSync(`${cg}/${sub}/cgroup.procs`, 'utf8').split('\n').filter(Boolean) : [];
      for (const p of procs) { try { process.kill(Number(p), 'SIGKILL'); } catch { /* gone */ } }
    }
    await new Promise((r) => setTimeout(r, 500));
    await rm(`${cg}/dyno`, { recursive: true, force: true }).catch(() => undefined);
    await rm(file, { force: true });
    await rm('/run/slipway-probe', { recursive: true, force: true });
    await systemctl('daemon-reload').catch(() => undefined);
    await systemctl('reset-failed', unit).catch(() => undefined);
  });
  await systemctl('daemon-reload');
  await systemctl('start', unit).catch(async (err: unknown) => {
    throw new Error(`the probe did not start: ${(err as Error).message}: ${(await journalLines(unit)).map((l) => l.raw).slice(-12).join(' | ')}`);
  });
  await waitUntil('the probe to enable pids for its children', () => (existsSync(`${cg}/cgroup.subtree_control`) && readFileSync(`${cg}/cgroup.subtree_control`, 'utf8').includes('pids')) || undefined, guestMs(1_000));
  await systemctl('restart', unit).catch(() => undefined);
  const p = await waitUntil('the restart to finish', async () => {
    const v = await unitProperties(unit, ['ActiveState', 'Result', 'ExecMainStatus']);
    return v.ActiveState === 'failed' || v.ActiveState === 'active' ? v : undefined;
  }, guestMs(1_000), 500);
  const failed = p.ActiveState === 'failed' && p.ExecMainStatus === '219';
  const journal = failed ? '' : `: ${(await journalLines(unit)).map((l) => l.raw).slice(-8).join(' | ')}`;
  t.match(p, { ActiveState: 'failed', ExecMainStatus: '219' }, `the restarted main process could not be placed in its own cgroup (219/CGROUP)${journal}`);
});
