// The agent as an operator runs it: systemd/slipway-agent.service installed and started with
// `systemctl start` on a systemd 252 + cgroup v2 host (the guest of scripts/vm/run.sh), dialling
// a reference coordinator that runs in the guest too. Shown: the agent connects, journald holds
// its pino JSON lines, and the capacity report it sends carries each dyno's memory as read
// from cgroup v2 (DynoManager.memoryByDyno over agent/host/cgroup-stats.ts).
//
// Independent of the unit's Type= (simple today, notify with a watchdog next): the unit is
// started with --no-block and the test waits for what a user sees, the agent at the
// coordinator, not for the start job.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { processesMentioning, tempDir } from '../helpers/host.js';
import { getJson, http } from '../helpers/http.js';
import { makeSlug, serveSlugs } from '../helpers/slugs.js';
import { AGENT_UNIT, assertProductionLikeHost, guestAgentConfig, guestMs, installAgentUnit, journalLines, startGuestCoordinator, systemctl, unitProperties, waitUntil } from './helpers.js';

const MB = 1024 * 1024;

t.test('the guest is systemd pid 1 with cgroup v2 only, journald running', async (t) => {
  assertProductionLikeHost(t);
  t.match(await systemctl('--version'), /^systemd 25\d/, 'systemd 25x (Debian 12: 252)');
  t.match(await systemctl('is-active', 'systemd-journald.service'), /^active/, 'journald runs');
});

t.test('systemctl start runs the agent from its unit file; it connects, logs JSON to journald, and reports dyno memory from cgroup v2', async (t) => {
  const dir = await tempDir(t, 'slipway-vm-unit-');
  const coordinator = await startGuestCoordinator(t, dir);
  // memory.sampleMs: the capacity report carries the last memory sample of each dyno.
  const agent = await guestAgentConfig(t, dir, coordinator, { memory: { sampleMs: 1_000 }, stopGraceMs: 3_000 });
  const unit = await installAgentUnit(t, agent.file);
  t.match(unit, `ExecStart=/opt/slipway-node/current/bin/node ${join('/work/main', 'dist/agent/main.js')} serve --config ${agent.file}`, 'the unit runs the repo\'s build with the test\'s config');

  await systemctl('start', '--no-block', AGENT_UNIT);
  const seen = await waitUntil('the agent to connect to the coordinator', async () => {
    const a = await coordinator.agent(agent.agentId);
    return a?.connected ? a : undefined;
  }, guestMs(6_000));
  t.ok(seen.connected, `agent ${agent.agentId} is connected at the coordinator`);

  const props = await unitProperties(AGENT_UNIT, ['MainPID', 'ControlGroup', 'ActiveState', 'Type']);
  t.match(props.ActiveState, /^(active|activating)$/, `the unit is up (${props.ActiveState}, Type=${props.Type})`);
  const mainPid = Number(props.MainPID);
  t.ok(mainPid > 0, `systemd tracks the agent as the unit's main process (pid ${mainPid})`);
  t.match(readFileSync(`/proc/${mainPid}/cmdline`, 'utf8').replace(/\0/g, ' '), /dist\/agent\/main\.js serve/, 'the main process is the agent');
  t.equal(readFileSync(`/proc/${mainPid}/cgroup`, 'utf8').trim(), `0::${props.ControlGroup}`, `the agent runs in the unit's cgroup (${props.ControlGroup})`);

  const started = await waitUntil('"agent started" in the journal', async () => (await journalLines(AGENT_UNIT)).find((l) => l.json?.msg === 'agent started'), guestMs(2_000));
  t.equal(started.json?.agentId, agent.agentId, 'journald holds the agent\'s JSON line with its fields');
  const lines = await journalLines(AGENT_UNIT);
  const agentLines = lines.filter((l) => !/^(Started|Starting|Stopping|Stopped) /.test(l.raw) && !l.raw.includes('.service:'));
  t.ok(agentLines.length >= 2, `the agent wrote ${agentLines.length} lines`);
  t.same(agentLines.filter((l) => !l.json).map((l) => l.raw), [], 'every line the agent wrote is JSON');
  t.ok(agentLines.every((l) => typeof l.json?.level === 'number' && typeof l.json?.time === 'string'), 'pino lines: level and time on each');

  // One worker dyno that holds a known amount of memory: its working set reaches the
  // coordinator in the capacity report.
  const slug = await makeSlug(dir, { 'Procfile': 'worker: true\n' });
  const slugs = await serveSlugs({ 'app.tgz': slug.bytes });
  t.teardown(() => slugs.close());
  const app = `vm${agent.agentId.slice(-8)}`;
  const held = 48;
  const formation = (quantity: number) => ({
    quantity, size: 'standard-1x', slug: { url: slugs.url('app.tgz'), sha256: slug.sha256 }, env: {},
    command: `head -c ${held * MB} /dev/zero > /dev/shm/held && echo held; exec sleep 100000`,
  });
  const put = await http('PUT', `${coordinator.apiUrl}/apps/${app}/formation/worker`, formation(1));
  t.equal(put.status, 200, `formation accepted: ${put.body}`);
  let last: unknown;
  const report = await waitUntil('a capacity report with the dyno\'s memory', async () => {
    const capacity = (await coordinator.agent(agent.agentId))?.capacity;
    last = { dynoMemory: capacity?.dynoMemory, dynoCount: capacity?.dynoCount, dynos: await getJson(`${coordinator.apiUrl}/dynos`) };
    const m = capacity?.dynoMemory?.[0];
    return m && m.workingSetBytes >= held * MB ? m : undefined;
  }, guestMs(8_000), 1_000).catch(async (err: unknown) => {
    const tail = (await journalLines(AGENT_UNIT)).slice(-15).map((l) => l.raw).join('\n');
    throw new Error(`${(err as Error).message}; last seen: ${JSON.stringify(last)}; the agent's last lines:\n${tail}`);
  });
  t.equal(report.quotaBytes, 512 * MB, 'the dyno\'s quota: standard-1x, 512 MB');
  t.ok(report.workingSetBytes >= held * MB && report.workingSetBytes <= (held + 12) * MB,
    `its working set, ${(report.workingSetBytes / MB).toFixed(1)} MB, is the ${held} MB it holds (within 12 MB)`);
  t.equal(report.swapBytes, 0, 'no swap');

  // The cgroup layout under systemd (systemd/slipway-agent.service): the dyno's conmon monitor
  // stays in the unit's cgroup (KillMode=process leaves it running across agent restarts), the
  // dyno's processes are in their own cgroup under the agent's cgroupParent, outside the unit.
  const dynoId = report.id as string;
  const dynoCgroup = `${agent.cgroupParent}/slipway-${dynoId}`;
  const dynoPids = readFileSync(`/sys/fs/cgroup${dynoCgroup}/cgroup.procs`, 'utf8').split('\n').filter(Boolean);
  t.ok(dynoPids.length >= 1, `the dyno's processes are in ${dynoCgroup}`);
  const conmon = processesMentioning(join(agent.stateDir, 'dynos', dynoId)).map((p) => Number(p.split(':')[0])).find((pid) => readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'conmon');
  t.ok(conmon, 'the dyno has a conmon monitor');
  if (conmon) t.equal(readFileSync(`/proc/${conmon}/cgroup`, 'utf8').trim(), `0::${props.ControlGroup}`, "conmon is in the agent unit's cgroup");

  t.equal((await http('PUT', `${coordinator.apiUrl}/apps/${app}/formation/worker`, formation(0))).status, 200);
  await waitUntil('the dyno to be down', async () => {
    const a = await coordinator.agent(agent.agentId);
    return a && (a.capacity?.dynoMemory ?? []).length === 0 && a.capacity?.dynoCount === 0 ? a : undefined;
  }, guestMs(4_000), 500);
  t.pass('scaled to zero: the report lists no dyno');

  await systemctl('stop', AGENT_UNIT);
  t.equal((await unitProperties(AGENT_UNIT, ['ActiveState'])).ActiveState, 'inactive', 'systemctl stop stops the agent');
});
