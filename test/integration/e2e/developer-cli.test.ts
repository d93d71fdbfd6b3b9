// The app developer's view, with real processes: the coordinator and one agent (built
// executables) running runc dynos, and the developer CLI `slipway` (dist/cli/main.js) that
// talks to the coordinator's API only, with its token. Every command is run as a developer
// runs it, and what it printed and its exit status are what is checked: apps, ps, scale,
// restart, run --detach, logs with its filters, logs --tail following new lines, --json, and the errors
// with their codes (no token, a wrong token, an unknown app or process type).
import t from 'tap';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { cgroupChildren, eventually, mountsUnder, processesMentioning, REPO, runcContainers } from '../../helpers/host.js';
import { getJson, http, NO_AUTH } from '../../helpers/http.js';
import { runSlipway } from '../../helpers/slipway-cli.js';
import { dynoNetworksLeft } from '../../helpers/network.js';
import { startDevPlatform } from '../../helpers/dev-platform.js';

const slipway = runSlipway;

t.test('a developer drives an app through the coordinator with slipway', async (t) => {
  const { dir, stateDir, cgroupParent, network, app, agentToken: token, apiUrl, env, home, slugRef } = await startDevPlatform(t, { prefix: 'dev', portRange: '32000-32999' });

  // The API is closed without the token; the health checks a load balancer makes are not.
  const open = await http('GET', `${apiUrl}/apps`, undefined, NO_AUTH);
  t.equal(open.status, 401, 'GET /apps without a token is refused');
  t.equal(JSON.parse(open.body).error.code, 'AUTH_INVALID_TOKEN');
  t.match(open.headers['www-authenticate'], /^Bearer/, 'with WWW-Authenticate: Bearer');
  t.equal((await http('GET', `${apiUrl}/healthz`, undefined, NO_AUTH)).status, 200, '/healthz needs no token');
  t.equal((await http('PUT', `${apiUrl}/apps/${app}/formation/web`, {}, { authorization: `Bearer ${token}` })).status, 401, "the agents' token is not an API token");

  const noToken = await slipway({ PATH: env.PATH, HOME: home, SLIPWAY_API_URL: apiUrl }, ['apps']);
  t.equal(noToken.code, 2, 'no token: a usage error');
  t.match(noToken.stderr, /^CONFIG_INVALID: no API token: set SLIPWAY_API_TOKEN/);
  const wrong = await slipway({ ...env, SLIPWAY_API_TOKEN: 'not-the-token-0123456789' }, ['apps']);
  t.equal(wrong.code, 1, 'a wrong token fails');
  t.match(wrong.stderr, /^AUTH_INVALID_TOKEN: /, 'with the code first');
  const unreachable = await slipway({ ...env, SLIPWAY_API_URL: 'http://127.0.0.1:1' }, ['apps']);
  t.match(unreachable, { code: 1, stderr: /^COORDINATOR_UNREACHABLE: cannot reach the coordinator at http:\/\/127\.0\.0\.1:1/ });

  // A release, as a deploy makes it (the API's PUT), then the developer's commands.
  const command = 'echo "booted $DYNO"; exec httpd -f -p $PORT -h /app/public';
  const put = await http('PUT', `${apiUrl}/apps/${app}/formation/web`, { quantity: 1, size: 'standard-1x', command, slug: slugRef });
  t.equal(put.status, 200, put.body);

  const apps = await slipway(env, ['apps', '--json']);
  t.equal(apps.code, 0, apps.stderr);
  t.match(JSON.parse(apps.stdout), [{ name: app, formation: [{ type: 'web', quantity: 1, size: 'standard-1x' }] }], 'apps --json lists the app');
  t.match((await slipway(env, ['apps'])).stdout, new RegExp(`^APP +FORMATION +DYNOS UP\\n${app} +web=1:standard-1x +[01]/1\\n$`), 'apps prints a table');

  // A tail that follows from now on, started before the scale.
  const tail = spawn(process.execPath, [join(REPO, 'dist', 'cli', 'main.js'), 'logs', '-a', app, '--tail', '--source', 'app', '-n', '0'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => { tail.kill('SIGKILL'); });
  let tailed = '';
  tail.stdout.on('data', (b: Buffer) => { tailed += b.toString('utf8'); });
  await eventually('the tail session at the coordinator', async () => ((await getJson(`${apiUrl}/healthz`)).logTails?.sessions === 1 ? true : undefined), 15_000);

  const scaled = await slipway(env, ['scale', '-a', app, 'web=2'], 120_000);
  t.equal(scaled.code, 0, scaled.stderr);
  t.equal(scaled.stdout, 'Scaling dynos... done, now running web at 2:standard-1x\n', 'scale says what runs now');

  const upPs = await eventually('both dynos up in ps --json', async () => {
    const r = await slipway(env, ['ps', '-a', app, '--json']);
    const dynos = JSON.parse(r.stdout) as any[];
    return dynos.length === 2 && dynos.every((d) => d.state === 'up') ? dynos : undefined;
  }, 60_000);
  t.same(upPs.map((d: any) => d.name), ['web.1', 'web.2']);
  t.match(upPs[0], { type: 'web', size: 'standard-1x', command, agentId: `agent-${app}` }, 'ps --json has the size and command');
  const ps = await slipway(env, ['ps', '-a', app]);
  t.match(ps.stdout, /^=== web \(standard-1x\): echo "booted \$DYNO"; exec httpd -f -p \$PORT -h \/app\/public \(2\)\nweb\.1: up \S+ \(~ \S+ ago\)\nweb\.2: up /, 'ps prints Heroku style');

  await eventually('the tail to show web.2 booting', async () => (tailed.includes(`app[web.2]: booted web.2`) ? true : undefined), 30_000);
  t.notMatch(tailed, /slipway\[/, '--source app leaves the agent\'s lines out');

  const logs = await slipway(env, ['logs', '-a', app]);
  t.equal(logs.code, 0, logs.stderr);
  t.match(logs.stdout, /slipway\[web\.1\]: State changed from starting to up/, 'logs has the agent\'s lines');
  t.match(logs.stdout, /app\[web\.1\]: booted web\.1/, 'and the app\'s');
  const web2 = await slipway(env, ['logs', '-a', app, '--dyno', 'web.2', '--json']);
  const web2Lines = web2.stdout.trim().split('\n').map((l) => JSON.parse(l));
  t.ok(web2Lines.length > 0 && web2Lines.every((l: any) => l.dyno === 'web.2'), `--dyno web.2 gives only web.2's lines (${web2Lines.length})`);
  t.ok(web2Lines.some((l: any) => l.source === 'app' && l.message === 'booted web.2'), 'logs --json splits the line');

  // Restart one dyno: a fresh one takes its place (another id), the other dyno stays.
  const bootsOfWeb1 = (): number => tailed.split('app[web.1]: booted web.1').length - 1;
  const bootsBefore = bootsOfWeb1();
  const restarted = await slipway(env, ['restart', '-a', app, 'web.1', '--json'], 120_000);
  t.equal(restarted.code, 0, restarted.stderr);
  t.same(JSON.parse(restarted.stdout), { app, restarted: ['web.1'] });
  const afterRestart = await eventually('a fresh web.1 up', async () => {
    const dynos = JSON.parse((await slipway(env, ['ps', '-a', app, '--json'])).stdout) as any[];
    return dynos.length === 2 && dynos.every((d) => d.state === 'up') && dynos[0].id !== upPs[0].id ? dynos : undefined;
  }, 60_000);
  t.equal(afterRestart[1].id, upPs[1].id, 'web.2 was left alone');
  await eventually('the tail to show the fresh web.1 booting', async () => (bootsOfWeb1() === bootsBefore + 1 ? true : undefined), 30_000);

  // A detached one-off dyno of the release: its output is in the logs under run.N, and once
  // its command ended it leaves ps.
  const run = await slipway(env, ['run', '-a', app, '--detach', '--env', 'GREETING=hello there', '--json', '--', 'echo "one-off $DYNO says $GREETING"; echo "to stderr" >&2'], 120_000);
  t.equal(run.code, 0, run.stderr);
  const oneOff = JSON.parse(run.stdout);
  t.match(oneOff, { name: /^run\.\d{4}$/, type: 'run', app }, 'run --detach answers with the one-off dyno run.N');
  const runLogs = await eventually('the one-off output in logs --dyno run.N', async () => {
    const r = await slipway(env, ['logs', '-a', app, '--dyno', oneOff.name, '--source', 'app']);
    return r.stdout.includes(`app[${oneOff.name}]: one-off ${oneOff.name} says hello there`) && r.stdout.includes('to stderr') ? r.stdout : undefined;
  }, 60_000);
  t.notMatch(runLogs, /app\[web\./, 'the filter kept the web dynos out');
  await eventually('the one-off gone from ps', async () => {
    const dynos = JSON.parse((await slipway(env, ['ps', '-a', app, '--json'])).stdout) as any[];
    return dynos.every((d) => d.type !== 'run') && dynos.length === 2 ? true : undefined;
  }, 60_000);
  const plain = await slipway(env, ['run', '-a', app, '--detach', '--', 'true']);
  t.match(plain, { code: 0, stdout: /^Running true on \S+\.\.\. \w+, run\.\d{4}\nIts output: slipway logs -a \S+ --dyno run\.\d{4}\n$/ }, 'run --detach says what it started');
  t.match(await slipway(env, ['run', '-a', app, '-t', '--no-tty', '--', 'true']), { code: 2, stderr: /^CONFIG_INVALID: run takes -t or --no-tty, not both/ }, '-t and --no-tty contradict');
  t.match(await slipway(env, ['run', '-a', app, '-t', '--', 'true']), { code: 2, stderr: /^CONFIG_INVALID: run -t needs stdin to be a terminal/ }, '-t without a terminal is a usage error (attached runs: attached-run.test.ts)');

  // Errors carry their codes.
  const unknownApp = await slipway(env, ['ps', '-a', 'no-such-app']);
  t.match(unknownApp, { code: 1, stderr: /^APP_NOT_FOUND: / });
  const unknownType = await slipway(env, ['scale', '-a', app, 'worker=1']);
  t.match(unknownType, { code: 1, stderr: /^FORMATION_NOT_FOUND: app \S+ has no worker formation/ });
  const unknownSize = await slipway(env, ['scale', '-a', app, 'web=1:huge']);
  t.match(unknownSize, { code: 1, stderr: /^SIZE_UNKNOWN: / });
  const noDyno = await slipway(env, ['restart', '-a', app, 'web.9']);
  t.match(noDyno, { code: 1, stderr: /^DYNO_NOT_FOUND: / });
  const badArgs = await slipway(env, ['scale', '-a', app, 'web']);
  t.match(badArgs, { code: 2, stderr: /^CONFIG_INVALID: scale wants TYPE=QUANTITY/ });
  const noApp = await slipway(env, ['ps']);
  t.match(noApp, { code: 2, stderr: /^CONFIG_INVALID: ps needs the app/ });

  const down = await slipway(env, ['scale', '-a', app, 'web=0', '--json'], 120_000);
  t.equal(down.code, 0, down.stderr);
  t.match(JSON.parse(down.stdout), [{ type: 'web', quantity: 0 }]);
  await eventually('no dynos left', async () => ((await getJson(`${apiUrl}/dynos`)).filter((d: any) => d.app === app).length === 0 ? true : undefined), 30_000);
  tail.kill('SIGTERM');
  await eventually('the tail session to end at the coordinator', async () => ((await getJson(`${apiUrl}/healthz`)).logTails?.sessions === 0 ? true : undefined), 10_000);

  t.same(runcContainers('slipway-').filter((c) => c.includes(app)), [], 'no container');
  t.same(mountsUnder(dir), [], 'no mount');
  t.same(cgroupChildren(cgroupParent), [], 'no cgroup');
  t.same(dynoNetworksLeft(network.bridge), [], 'no dyno network namespace or veth');
  t.same(processesMentioning(join(stateDir, 'dynos')), [], 'no conmon or dyno process');
});
