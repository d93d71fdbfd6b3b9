// The on-call commands as the person on call runs them: the built executable
// (`node dist/agent/main.js status ...`) against a real agent (spawned, with the reference
// coordinator) running a real runc web dyno, once with the diagnostics endpoint on loopback TCP
// and once on a unix socket, both named by the agent's config file (--config). Shown: status and
// dynos as tables and as the endpoint's JSON; logs by the dyno's name; logs -f receiving a line
// the dyno printed after the follow started; why (a decision about the dyno once the decision
// log is wired into the agent, else the empty answer); and the failures' codes on stderr with a
// non-zero exit: a wrong token, an unknown dyno, the agent down.
import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { eventually } from '../../../helpers/host.js';
import { spawnBin } from '../../../helpers/processes.js';
import { getJson, http } from '../../../helpers/http.js';
import { e2eHost } from '../../e2e/fixtures/e2e-host.js';

const MAIN = join(import.meta.dirname, '../../../../dist/agent/main.js');

interface Run { code: number | null; stdout: string; stderr: string }

function cli(args: string[]): Promise<Run> {
  return new Promise((done) => {
    execFile(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
      done({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
    });
  });
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const lastTick = (text: string) => Math.max(0, ...[...text.matchAll(/tick (\d+)/g)].map((m) => Number(m[1])));

for (const transport of ['tcp', 'unix'] as const) {
  t.test(`on-call commands over ${transport}`, async (t) => {
    const listen = transport === 'tcp' ? `127.0.0.1:${await freePort()}` : 'unix:SOCKET';
    const host = await e2eHost(t, `oc${transport[0]}`, { 'public/index.html': 'hello\n' }, transport === 'tcp' ? { diagnosticsListen: listen } : {});
    const diagnosticsListen = transport === 'tcp' ? listen : `unix:${join(host.dir, 'diag.sock')}`;
    if (transport === 'unix') {
      // The config file names the socket (the path is the test's own dir).
      const { readFile } = await import('node:fs/promises');
      const config = JSON.parse(await readFile(host.configFile, 'utf8')) as Record<string, unknown>;
      await writeFile(host.configFile, JSON.stringify({ ...config, diagnosticsListen }));
    }
    const base = ['--config', host.configFile, '--state-dir', host.stateDir];

    const coordinator = spawnBin('coordinator', ['serve', '--listen', '127.0.0.1:0', '--router-listen', '127.0.0.1:0'], { SLIPWAY_COORDINATOR_TOKEN: host.token });
    host.procs.push(coordinator);
    const listening = await coordinator.waitFor('coordinator listening');
    const apiUrl = listening.apiUrl as string;
    const agentId = `agent-${host.app}`;
    const agent = spawnBin('agent', [
      'serve', ...base, '--coordinator', listening.agentUrl as string, '--token-file', host.tokenFile, '--address', '127.0.0.1',
      '--cgroup-parent', host.cgroupParent, '--port-range', '34000-34999', '--reserved-memory-mb', '512', '--stop-grace-ms', '2000', '--agent-id', agentId,
    ]);
    host.procs.push(agent);
    const started = await agent.waitFor('agent started', 30_000);
    t.equal(started.diagnosticsUrl, transport === 'tcp' ? `http://${listen}` : diagnosticsListen, 'the agent listens where its config says');
    await eventually('the agent to connect', async () => (await getJson(`${apiUrl}/agents`)).find((a: any) => a.id === agentId && a.connected));

    const command = 'httpd -p $PORT -h /app/public; i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.2; done';
    const formation = (quantity: number) => http('PUT', `${apiUrl}/apps/${host.app}/formation/web`, { quantity, size: 'standard-1x', command, slug: { url: host.slugUrl, sha256: host.slug.sha256 } });
    t.equal((await formation(1)).status, 200);

    // dynos: JSON first (the endpoint's), then the table a person reads.
    const up = await eventually('web.1 up', async () => {
      const r = await cli(['dynos', '--json', ...base]);
      const list = r.code === 0 ? JSON.parse(r.stdout) as any[] : [];
      return list.find((d) => d.name === 'web.1' && d.state === 'up' && d.pid > 0);
    }, 90_000);
    const dynos = await cli(['dynos', ...base]);
    t.equal(dynos.code, 0, dynos.stderr);
    t.match(dynos.stdout, /^NAME +APP +STATE +FOR +MEMORY +PID +ADDRESS +ENDPOINT +RELEASE +REASON +ID\n/, 'a header row');
    t.match(dynos.stdout, new RegExp(`^web\\.1 +${host.app} +up +\\d+[smhd]\\S* +512 MB +${up.pid as number} +\\d+\\.\\d+\\.\\d+\\.\\d+ +\\S+:\\d+ .* ${up.id as string}$`, 'm'), 'web.1 up, with its pid, address, endpoint and id');

    // status: the table and the JSON.
    const status = await cli(['status', ...base]);
    t.equal(status.code, 0, status.stderr);
    t.match(status.stdout, new RegExp(`^agent +${agentId} +version \\S+ +runtime runc +address \\S+$`, 'm'));
    t.match(status.stdout, /^link +ready for \d+/m, 'the link is up');
    t.match(status.stdout, /^dynos +1$/m);
    t.match(status.stdout, /^accepting +yes$/m);
    const statusJson = await cli(['status', '--json', ...base]);
    t.match(JSON.parse(statusJson.stdout), { agent: { id: agentId, runtime: 'runc' }, link: { state: 'ready' }, dynos: 1, capacity: { accepting: true } });

    // logs by name, then -f: a line written after the follow started arrives.
    const logs = await eventually('a few ticks in the log', async () => {
      const r = await cli(['logs', 'web.1', '--lines', '50', ...base]);
      return r.code === 0 && lastTick(r.stdout) >= 2 ? r : undefined;
    }, 20_000);
    t.match(logs.stdout, new RegExp(`^\\S+ app\\[web\\.1\\]: tick \\d+$`, 'm'), 'Heroku log lines');
    const logsJson = JSON.parse((await cli(['logs', up.id as string, '--json', ...base])).stdout) as { lines: string[] };
    t.ok(logsJson.lines.some((l) => / app\[web\.1\]: tick \d+$/.test(l)), 'by id, as JSON {lines}');
    const before = lastTick((await cli(['logs', 'web.1', ...base])).stdout);
    const follow = spawn(process.execPath, [MAIN, 'logs', 'web.1', '-f', '--lines', '1', ...base], { stdio: ['ignore', 'pipe', 'pipe'] });
    t.teardown(() => { follow.kill('SIGKILL'); });
    let followed = '';
    follow.stdout.on('data', (b: Buffer) => { followed += b.toString('utf8'); });
    await eventually('a line printed after the follow started', () => (lastTick(followed) > before + 3 ? true : undefined), 15_000);
    t.pass(`logs -f printed tick ${lastTick(followed)} (tick ${before} was the last before it started)`);
    t.equal(follow.exitCode, null, 'and keeps following');
    follow.kill('SIGINT');

    // why: with the decision log wired, a crash leaves a restart decision about web.1.
    const token = (await import('node:fs')).readFileSync(join(host.stateDir, 'agent', 'diagnostics.token'), 'utf8').trim();
    const eventsServed = await cli(['why', '--json', ...base]);
    t.equal(eventsServed.code, 0, eventsServed.stderr);
    const hasDecisionLog = await probeDecisionLog(diagnosticsListen, token);
    if (hasDecisionLog) {
      process.kill(up.pid as number, 'SIGKILL');
      const why = await eventually('a decision about web.1', async () => {
        const r = await cli(['why', 'web.1', ...base]);
        return r.code === 0 && /restart_scheduled/.test(r.stdout) && / crashed /.test(r.stdout) ? r : undefined;
      }, 30_000);
      t.match(why.stdout, /^Decisions about web\.1:\nWHEN +KIND +DYNO +APP +WHY\n/m, 'the decisions table');
      t.match(why.stdout, /^\S+ ago +restart_scheduled +web\.1 +\S+ +restart \d+ in /m, 'the restart the agent chose after the kill');
      t.match(why.stdout, /Last exits of web\.1:\nWHEN +CAUSE +CODE +SIGNAL /, 'and the exits table');
      t.match(why.stdout, /^\S+ ago +crashed +\S+ +SIGKILL /m, 'the kill recorded as a crash by SIGKILL');
    } else {
      const why = await cli(['why', 'web.1', ...base]);
      t.equal(why.code, 0, why.stderr);
      t.match(why.stdout, /no decisions about this dyno/, 'no decision log in this agent yet: the empty answer');
      t.same(JSON.parse(eventsServed.stdout), { decisions: [] });
    }

    // Failures: a code on stderr, a non-zero exit.
    const unknown = await cli(['logs', 'web.9', ...base]);
    t.equal(unknown.code, 1);
    t.match(unknown.stderr, /^slipway-agent: DYNO_NOT_FOUND: no dyno web\.9 on this host/);
    t.equal(unknown.stdout, '');
    const wrongTokenFile = join(host.dir, 'wrong.token');
    await writeFile(wrongTokenFile, 'not-the-token\n', { mode: 0o600 });
    const wrongConfig = join(host.dir, 'wrong.json');
    await writeFile(wrongConfig, JSON.stringify({ diagnosticsListen, diagnosticsTokenFile: wrongTokenFile }));
    const refused = await cli(['status', '--config', wrongConfig, '--state-dir', host.stateDir]);
    t.equal(refused.code, 1);
    t.match(refused.stderr, /^slipway-agent: AUTH_INVALID_TOKEN: /);

    t.equal((await formation(0)).status, 200);
    await eventually('no dynos', async () => ((JSON.parse((await cli(['dynos', '--json', ...base])).stdout) as unknown[]).length === 0) || undefined, 60_000);
    t.equal((await cli(['dynos', ...base])).stdout, 'no dynos on this host\n');
    await agent.stop();
    const down = await cli(['status', ...base]);
    t.equal(down.code, 1, 'the agent down');
    t.match(down.stderr, /^slipway-agent: DIAGNOSTICS_UNREACHABLE: no agent answers at /);
  });
}

/** Whether this agent serves GET /v1/events (the decision log, issue 14 item 3). */
async function probeDecisionLog(listen: string, token: string): Promise<boolean> {
  const { request } = await import('node:http');
  const target = listen.startsWith('unix:') ? { socketPath: listen.slice(5) } : { host: listen.split(':')[0], port: Number(listen.split(':')[1]) };
  return new Promise((resolve) => {
    const req = request({ ...target, path: '/v1/events', headers: { authorization: `Bearer ${token}` }, timeout: 5_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.end();
  });
}
