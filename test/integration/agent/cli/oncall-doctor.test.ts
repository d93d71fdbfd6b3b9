// `slipway-agent doctor` as run on a host: the built executable, against the reference
// coordinator and a running agent (spawned), with the agent's own config file. Shown: a healthy
// host is all ok or warn and exits 0; the coordinator refusing a wrong agent token, a stack the
// host lacks, and EC2 metadata that does not answer where the config says the host is on EC2
// are `fail` lines with exit 1 and HOST_CHECK_FAILED; a fake IMDSv2 on loopback answers ok (never
// 169.254.169.254). doctor runs without an agent too: that is a warning, not a failure.
import t from 'tap';
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { eventually } from '../../../helpers/host.js';
import { spawnBin } from '../../../helpers/processes.js';
import { getJson } from '../../../helpers/http.js';
import { startFakeImds } from '../../../helpers/fake-imds.js';
import { e2eHost } from '../../e2e/fixtures/e2e-host.js';

const MAIN = join(import.meta.dirname, '../../../../dist/agent/main.js');

interface Line { status: string; check: string; detail: string }

function doctor(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; lines: Line[] }> {
  return new Promise((done) => {
    execFile(process.execPath, [MAIN, 'doctor', ...args], { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
      const lines = stdout.split('\n').filter(Boolean).map((l) => {
        const m = /^(ok|warn|fail) {2,}(\S+) {2,}(.*)$/.exec(l);
        return m ? { status: m[1]!, check: m[2]!, detail: m[3]! } : { status: 'unparsed', check: '', detail: l };
      });
      done({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr, lines });
    });
  });
}

const line = (lines: Line[], check: string) => lines.find((l) => l.check === check);

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

t.test('doctor on a host with a coordinator and an agent', async (t) => {
  const diagnosticsListen = `127.0.0.1:${await closedPort()}`;
  const host = await e2eHost(t, 'dr', { 'public/index.html': 'hello\n' }, { diagnosticsListen });
  const coordinator = spawnBin('coordinator', ['serve', '--listen', '127.0.0.1:0', '--router-listen', '127.0.0.1:0'], { SLIPWAY_COORDINATOR_TOKEN: host.token });
  host.procs.push(coordinator);
  const listening = await coordinator.waitFor('coordinator listening');
  const agentUrl = listening.agentUrl as string;
  const base = ['--config', host.configFile, '--state-dir', host.stateDir, '--cgroup-parent', host.cgroupParent, '--coordinator', agentUrl];

  // Without an agent: the host checks run; the missing agent is a warning.
  const before = await doctor([...base, '--token-file', host.tokenFile]);
  t.match(line(before.lines, 'agent'), { status: 'warn', detail: /no diagnostics token/ }, 'no agent yet: a warning');

  const agentId = `agent-${host.app}`;
  const agent = spawnBin('agent', ['serve', ...base, '--token-file', host.tokenFile, '--address', '127.0.0.1', '--agent-id', agentId, '--port-range', '35000-35999']);
  host.procs.push(agent);
  await agent.waitFor('agent started', 30_000);
  await eventually('the agent to connect', async () => (await getJson(`${listening.apiUrl as string}/agents`)).find((a: any) => a.id === agentId && a.connected));

  t.test('a healthy host: every check ok or warn, exit 0', async (t) => {
    const r = await doctor([...base, '--token-file', host.tokenFile]);
    t.equal(r.code, 0, r.stdout + r.stderr);
    t.same(r.lines.filter((l) => l.status === 'fail' || l.status === 'unparsed'), [], 'no fail line');
    for (const check of ['config', 'runtime.runc', 'runtime.conmon', 'cgroups', 'overlayfs', 'disk', 'state-dir', 'token-files', 'coordinator.reach', 'coordinator.tls', 'coordinator.token', 'clock', 'stacks', 'netfilter', 'imds', 'agent']) {
      t.equal(line(r.lines, check)?.status, 'ok', `${check}: ${line(r.lines, check)?.detail ?? 'missing'}`);
    }
    t.match(line(r.lines, 'runtime.runc')?.detail, /runc version \d+\.\d+/, 'with its version');
    t.match(line(r.lines, 'cgroups')?.detail, /^v[12], controllers .*memory/);
    t.match(line(r.lines, 'stacks')?.detail, /^busybox \(\/bin\/sh\)$/);
    t.match(line(r.lines, 'netfilter')?.detail, new RegExp(`^table inet ${host.network.table}: `));
    t.match(line(r.lines, 'agent')?.detail, /link ready, 0 dynos/);
    const json = await doctor([...base, '--token-file', host.tokenFile, '--json']);
    t.match(JSON.parse(json.stdout), { ok: true, checks: [{ status: 'ok', check: 'config' }] }, '--json');
  });

  t.test('a wrong agent token: the coordinator refuses it, exit 1', async (t) => {
    const wrong = join(host.dir, 'wrong.token');
    await writeFile(wrong, 'not-the-token\n', { mode: 0o600 });
    const r = await doctor([...base, '--token-file', wrong]);
    t.equal(r.code, 1);
    t.match(line(r.lines, 'coordinator.token'), { status: 'fail', detail: /refused the agent token \(HTTP 401 AUTH_INVALID_TOKEN\)/ });
    t.equal(line(r.lines, 'coordinator.reach')?.status, 'ok', 'reachable all the same');
    t.match(r.stderr, /^slipway-agent: HOST_CHECK_FAILED: 1 of \d+ checks failed: coordinator\.token\n$/);
  });

  t.test('a stack the host must have and lacks', async (t) => {
    const r = await doctor([...base, '--token-file', host.tokenFile, '--stack', 'busybox', '--stack', 'heroku-24']);
    t.equal(r.code, 1);
    t.match(line(r.lines, 'stacks'), { status: 'fail', detail: /stack heroku-24 is not installed under / });
  });

  t.test('EC2 metadata: a fake IMDSv2 on loopback answers; none answering is a fail or a warning', async (t) => {
    const fake = await startFakeImds(t);
    const config = JSON.parse(await readFile(host.configFile, 'utf8')) as Record<string, unknown>;
    const withEc2 = async (name: string, ec2: Record<string, unknown>) => {
      const file = join(host.dir, `${name}.json`);
      await writeFile(file, JSON.stringify({ ...config, ec2 }));
      return doctor(['--config', file, '--state-dir', host.stateDir, '--coordinator', agentUrl, '--token-file', host.tokenFile]);
    };
    const ok = await withEc2('imds-ok', { enabled: true, endpoint: fake.url });
    t.match(line(ok.lines, 'imds'), { status: 'ok', detail: /IMDSv2 at http:\/\/127\.0\.0\.1:\d+: i-0123456789abcdef0 \(m6i\.large, eu-west-1b\)/ });
    t.equal(ok.code, 0, ok.stdout);
    t.ok(fake.counts.tokenPuts >= 1, 'a token was asked for (IMDSv2)');
    t.equal(fake.counts.withoutToken, 0, 'and never a request without one');
    const silent = `http://127.0.0.1:${await closedPort()}`;
    const enabled = await withEc2('imds-none', { enabled: true, endpoint: silent });
    t.match(line(enabled.lines, 'imds'), { status: 'fail', detail: /IMDS_/ }, 'ec2.enabled true and no service: fail');
    t.equal(enabled.code, 1);
    const auto = await withEc2('imds-auto', { enabled: 'auto', endpoint: silent });
    t.match(line(auto.lines, 'imds'), { status: 'warn', detail: /the agent starts without EC2/ }, 'auto: a warning');
    t.equal(auto.code, 0);
  });
});
