// The agent's reasons and its record of every exit, end to end (issue 14, items 3 and 4): the
// agent executable (dist/), runc dynos on the busybox stack, and a coordinator of the test's
// own (the SDK's AgentServer in this process, whose decoder checks every frame against the
// protocol: an event it did not accept never reaches `event`). The crashed event carries the
// exit's summary; the agent's diagnostics serve the exit records and the decisions as the CLI
// reads them: the crash restart, an admission refused with its numbers, the re-adoption
// outcomes after a SIGKILL of the agent, a drain.
import t from 'tap';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentServer, type DynoSpec, type Event, type Result } from '../../../shared/coordinator-sdk/index.js';
import { AGENT_WS_PATH, type DynoStateEvent } from '../../../shared/protocol.js';
import { eventually, quietLogger, uniqueName } from '../../helpers/host.js';
import { getJson } from '../../helpers/http.js';
import { spawnBin } from '../../helpers/processes.js';
import { e2eHost, killHard } from './fixtures/e2e-host.js';

const MB = 1024 * 1024;

t.test('crashed events carry the exit summary; /v1/dynos/:id/exits and /v1/events explain the host', async (t) => {
  // Crash restarts: the first at once, the next after a minute (nothing flaps during the test).
  const host = await e2eHost(t, 'exitrec', { 'public/index.html': 'hi\n' }, { restarts: { baseMs: 60_000, capMs: 60_000, jitter: 0 } });
  const { app, stateDir } = host;
  const agentId = `agent-${app}`;
  const events: Event['event'][] = [];
  let ready = 0;
  const server = new AgentServer({
    token: host.token, coordinatorId: 'exit-records-test', log: quietLogger(),
    app: { hello: () => undefined, ready: () => { ready += 1; }, event: (_id, e) => { events.push(e.event); }, capacity: () => undefined },
  });
  const httpServer = createServer();
  server.attach(httpServer);
  httpServer.listen(0, '127.0.0.1');
  await once(httpServer, 'listening');
  t.teardown(async () => {
    await server.close(0);
    httpServer.closeAllConnections();
    await new Promise((r) => httpServer.close(r));
  });
  const url = `ws://127.0.0.1:${(httpServer.address() as AddressInfo).port}${AGENT_WS_PATH}`;
  const args = [
    'serve', '--config', host.configFile, '--coordinator', url, '--token-file', host.tokenFile, '--state-dir', stateDir,
    '--address', '127.0.0.1', '--cgroup-parent', host.cgroupParent, '--diagnostics-listen', '127.0.0.1:0',
    '--port-range', '34600-34699', '--reserved-memory-mb', '512', '--stop-grace-ms', '1000', '--agent-id', agentId,
  ];
  const startAgent = async () => {
    const agent = spawnBin('agent', args);
    host.procs.push(agent);
    const started = await agent.waitFor('agent started', 30_000);
    const diag = started.diagnosticsUrl as string;
    const auth = { authorization: `Bearer ${(await readFile(join(stateDir, 'agent', 'diagnostics.token'), 'utf8')).trim()}` };
    return {
      agent,
      get: (path: string): Promise<any> => getJson(`${diag}${path}`, auth),
    };
  };
  const dyno = (name: string, command: string, memoryMb = 64): DynoSpec => ({
    id: `${app}-${name}-${uniqueName('').slice(0, 4)}`, app, type: 'worker', name: `${name}.1`,
    size: { name: 'test', memoryMb, cpuShares: 64, pidsLimit: 64 }, command, env: {},
    slug: { url: host.slugUrl, sha256: host.slug.sha256 }, stack: 'busybox',
  });
  const command = async (body: Parameters<AgentServer['sendCommand']>[1]): Promise<Result> => server.sendCommand(agentId, body);
  const stateEvents = (id: string) => events.filter((e): e is DynoStateEvent => e.kind === 'dyno_state' && e.dyno.id === id);

  let agent = await startAgent();
  await eventually('the agent to connect', async () => ready > 0 || undefined, 20_000);

  // 1. A crash: the summary rides in the crashed event, the full record is at the agent.
  const crasher = dyno('crasher', 'echo "starting up"; echo "config loaded"; echo "panic: cannot reach redis" >&2; exit 3');
  t.match(await command({ type: 'start_dyno', dyno: crasher }), { ok: true });
  const crashed = await eventually('the crashed event', async () => stateEvents(crasher.id).find((e) => e.dyno.state === 'crashed'), 20_000);
  t.match(crashed.dyno.exitSummary, { code: 3, signal: null, oomKilled: false, restartCount: 0, bindMs: null }, 'the coordinator got the summary (its decoder accepted it)');
  t.ok(crashed.dyno.exitSummary!.lines.some((l) => /app\[crasher\.1\]: panic: cannot reach redis$/.test(l)), 'with the last lines');
  t.ok(crashed.dyno.exitSummary!.lines.length <= 10 && crashed.dyno.exitSummary!.lines.every((l) => l.length <= 200), 'kept small');
  t.ok(crashed.dyno.exitSummary!.peakMemoryBytes! > 0, 'and the peak memory');
  t.notOk(stateEvents(crasher.id).some((e) => e.dyno.state !== 'crashed' && e.dyno.exitSummary), 'only a crashed event carries one');
  const { exits } = await eventually('two exits (the first restart is immediate)', async () => {
    const r = await agent.get(`/v1/dynos/${crasher.id}/exits`);
    return r.exits.length >= 2 ? r : undefined;
  }, 20_000);
  t.match(exits[0], { dynoId: crasher.id, dyno: 'crasher.1', cause: 'crashed', code: 3, restartCount: 0, reason: { code: 'DYNO_CRASHED' } });
  t.match(exits[1], { code: 3, restartCount: 1 });
  t.ok(exits[0].lines.some((l: string) => /app\[crasher\.1\]: starting up$/.test(l)), 'the record has the whole tail');
  // The exit is recorded just before the crash is reported, and the restart decided then.
  const scheduled = await eventually('two restart decisions', async () => {
    const r = (await agent.get(`/v1/events?dyno=${crasher.id}`)).decisions.filter((d: any) => d.kind === 'restart_scheduled');
    return r.length >= 2 ? r : undefined;
  }, 10_000);
  t.match(scheduled, [
    { data: { attempt: 1, delayMs: 0 } },
    { data: { attempt: 2, delayMs: 60_000, baseMs: 60_000 }, message: 'restart 2 in 60.0 s (backoff 2^0 x 60 s, capped at 60 s)' },
  ]);

  // 2. Admission refused: the numbers it was refused on.
  const huge = dyno('huge', 'sleep 600', 1024 * 1024);
  t.match(await command({ type: 'start_dyno', dyno: huge }), { ok: false, error: { code: 'INSUFFICIENT_CAPACITY' } });
  const [refused] = (await agent.get('/v1/events?dyno=huge.1')).decisions;
  t.match(refused, { kind: 'admission_refused', dynoId: huge.id, app, data: { code: 'INSUFFICIENT_CAPACITY', resource: 'memory', requestedBytes: 1024 * 1024 * MB } });
  t.ok(refused.data.allocatableBytes > 0 && refused.data.committedBytes === 64 * MB, `allocatable ${refused.data.allocatableBytes}, committed ${refused.data.committedBytes} (the crash looping dyno keeps its share)`);

  // 3. Re-adoption outcomes: the agent dies hard; one dyno keeps running, one dies meanwhile.
  const keeper = dyno('keeper', 'echo keeping on; sleep 600');
  const victim = dyno('victim', 'echo doomed; sleep 600');
  for (const d of [keeper, victim]) t.match(await command({ type: 'start_dyno', dyno: d }), { ok: true });
  const running = await eventually('both up', async () => {
    const list: any[] = await agent.get('/v1/dynos');
    const both = list.filter((d) => d.id === keeper.id || d.id === victim.id);
    return both.length === 2 && both.every((d) => d.state === 'up' && d.pid > 0) ? both : undefined;
  }, 30_000);
  await killHard(host, agent.agent);
  process.kill(running.find((d) => d.id === victim.id).pid, 'SIGKILL');
  const readyBefore = ready;
  agent = await startAgent();
  const after = (await agent.get('/v1/events')).decisions;
  const outcome = (id: string) => after.find((d: any) => d.dynoId === id && (d.kind === 'readopted' || d.kind === 'readoption_failed'));
  t.match(outcome(keeper.id), { kind: 'readopted', dyno: 'keeper.1', data: { running: true, state: 'up', driver: 'runc' }, message: /still running, reported up/ });
  t.match(outcome(victim.id), { kind: 'readopted', data: { running: false }, message: /exited while the agent was down/ });
  t.match(outcome(crasher.id), { kind: 'readoption_failed', data: { why: 'no_container', action: 'restart' } }, 'the crashed dyno waiting for its restart had no container left');
  t.equal(after.findIndex((d: any) => d.kind === 'readopted' || d.kind === 'readoption_failed'), 0, 'the outcomes are the new process\'s first decisions');
  const victimExit = await eventually('the victim\'s exit recorded by the new agent', async () => (await agent.get(`/v1/dynos/${victim.id}/exits`)).exits[0], 20_000);
  t.match(victimExit, { cause: 'crashed', signal: 'SIGKILL', adopted: true, ranMs: null, bindMs: null });

  // 4. A drain from the coordinator, then the dynos stopped: a stopped dyno's records stay.
  await eventually('the new agent to connect', async () => ready > readyBefore || undefined, 20_000);
  t.match(await command({ type: 'drain' }), { ok: true });
  t.match((await agent.get('/v1/events')).decisions.filter((d: any) => d.kind === 'drain'), [{ data: { cause: 'coordinator', stopDynos: false } }]);
  for (const d of [keeper, victim, crasher]) t.match(await command({ type: 'stop_dyno', dynoId: d.id, graceMs: 1000 }), { ok: true });
  await eventually('all down', async () => ((await agent.get('/v1/dynos')) as any[]).length === 0 || undefined, 30_000);
  const kept = (await agent.get(`/v1/dynos/${keeper.id}/exits`)).exits;
  t.match(kept.at(-1), { cause: 'stopped', dyno: 'keeper.1', signal: 'SIGTERM' }, 'a stopped dyno\'s last exit is still there');
  t.ok(kept.at(-1).lines.some((l: string) => /app\[keeper\.1\]: keeping on$/.test(l)), 'with what it wrote before the agent restart (from its log file)');
  t.ok(kept.at(-1).lines.some((l: string) => /slipway\[keeper\.1\]: Re-adopted as up$/.test(l)), 'and the agent\'s lines since');
});
