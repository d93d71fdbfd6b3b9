// The diagnostics endpoint under abuse, on a real agent (issue 14, item 6): the built agent and
// the reference coordinator as processes, a web dyno in a runc container on the busybox stack.
// While a local client throws at the agent's diagnostics port 2,000 headers, slow headers, a
// 1 GiB body and 500 concurrent connections, the rest of the agent goes on: its coordinator link
// stays up without a reconnect, and supervision works (a scale-up during the abuse is started,
// probed and reported up). server-abuse.test.ts shows each refusal in detail; this test shows
// the agent around the endpoint is not hurt, and its event loop (by its own metric) stayed
// responsive. Every load is bounded in count and time.
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { eventually } from '../../helpers/host.js';
import { spawnBin } from '../../helpers/processes.js';
import { getJson, http } from '../../helpers/http.js';
import { e2eHost } from './fixtures/e2e-host.js';

const files = { 'public/index.html': 'hello\n' };
/** Bound on the whole abuse: each load is cut by the test by then at the latest. */
const ABUSE_MS = 20_000;
/** Most the agent's event loop may lag during the abuse: its link pings every 15 s and gives up
 * after two missed pongs; a dyno's boot deadline is a minute. A second is far inside both, and
 * far above an idle loop's few milliseconds. */
const LOOP_DELAY_BOUND_S = 1;

/** Opens a loopback connection to `port` and runs `send` on it; resolves on close or the bound. */
function abuse(port: number, send: (s: Socket) => void, boundMs = ABUSE_MS): Promise<void> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    const bound = setTimeout(() => s.destroy(), boundMs);
    s.on('error', () => undefined);
    s.on('data', () => undefined);
    s.on('close', () => { clearTimeout(bound); resolve(); });
    s.once('connect', () => send(s));
  });
}

t.test('a flood at the diagnostics port: the link stays up and a scale-up during it is served', async (t) => {
  const host = await e2eHost(t, 'abuse', files);
  const coordinator = spawnBin('coordinator', ['serve', '--listen', '127.0.0.1:0', '--router-listen', '127.0.0.1:0'], { SLIPWAY_COORDINATOR_TOKEN: host.token });
  host.procs.push(coordinator);
  const listening = await coordinator.waitFor('coordinator listening');
  const apiUrl = listening.apiUrl as string;
  const agent = spawnBin('agent', [
    'serve', '--config', host.configFile, '--coordinator', listening.agentUrl as string, '--token-file', host.tokenFile,
    '--state-dir', host.stateDir, '--agent-id', 'abuse-agent', '--address', '127.0.0.1', '--cgroup-parent', host.cgroupParent,
    '--diagnostics-listen', '127.0.0.1:0', '--port-range', '34000-34499', '--reserved-memory-mb', '512', '--stop-grace-ms', '2000',
  ]);
  host.procs.push(agent);
  const started = await agent.waitFor('agent started', 30_000);
  const diagUrl = started.diagnosticsUrl as string;
  const diagPort = Number(new URL(diagUrl).port);
  const token = (await readFile(join(host.stateDir, 'agent', 'diagnostics.token'), 'utf8')).trim();
  const get = (path: string): Promise<any> => getJson(`${diagUrl}${path}`, { authorization: `Bearer ${token}` });
  await eventually('the agent to connect', async () => ((await getJson(`${apiUrl}/agents`)) as any[]).find((a) => a.id === 'abuse-agent' && a.connected));

  const command = 'httpd -f -p $PORT -h /app/public';
  const formation = (quantity: number) => http('PUT', `${apiUrl}/apps/${host.app}/formation/web`, { quantity, size: 'standard-1x', command, slug: { url: host.slugUrl, sha256: host.slug.sha256 } });
  t.equal((await formation(1)).status, 200);
  await eventually('web.1 up', async () => ((await get('/v1/dynos')) as any[]).find((d) => d.state === 'up'), 60_000);
  const before = await get('/v1/status');
  t.equal(before.link.state, 'ready', 'the link is up before the abuse');
  // A scrape resets the agent's event-loop delay gauges: the next one reads the abuse alone.
  const scrape = async () => (await http('GET', `${diagUrl}/metrics`, undefined, { authorization: `Bearer ${token}` })).body;
  await scrape();

  // The abuse, all at once: 500 connections that send half a request and hold it; 20 that send
  // a header byte a second; one with 2,000 headers; one announcing a 1 GiB body and sending it.
  const loads: Promise<void>[] = [];
  for (let i = 0; i < 500; i++) loads.push(abuse(diagPort, (s) => s.write('GET /v1/status HTTP/1.1\r\nhost: x\r\n')));
  for (let i = 0; i < 20; i++) {
    loads.push(abuse(diagPort, (s) => {
      const drip = setInterval(() => { if (!s.destroyed) s.write('x'); }, 1_000);
      s.write('GET /v1/status HTTP/1.1\r\nx-slow: ');
      s.once('close', () => clearInterval(drip));
    }));
  }
  loads.push(abuse(diagPort, (s) => {
    s.write('GET /v1/status HTTP/1.1\r\nhost: x\r\n' + Array.from({ length: 2_000 }, (_, i) => `x-h${i}: v\r\n`).join('') + '\r\n');
  }));
  loads.push(abuse(diagPort, (s) => {
    s.write(`POST /v1/status HTTP/1.1\r\nhost: x\r\ncontent-length: ${1024 ** 3}\r\n\r\n`);
    const chunk = Buffer.alloc(64 * 1024);
    let sent = 0;
    const pump = (): void => {
      while (!s.destroyed && sent < 1024 ** 3) {
        sent += chunk.length;
        if (!s.write(chunk)) { s.once('drain', pump); return; }
      }
    };
    pump();
  }));

  // Meanwhile: a scale-up. The agent must take the command off its link, start the dyno, probe
  // it and report it up to the coordinator, all on the event loop the flood is aimed at.
  const scaledAt = Date.now();
  t.equal((await formation(2)).status, 200);
  const two = await eventually('web.2 up at the coordinator during the abuse', async () => {
    const all = ((await getJson(`${apiUrl}/dynos`)) as any[]).filter((d) => d.app === host.app);
    return all.length === 2 && all.every((d) => d.state === 'up') ? all : undefined;
  }, 60_000);
  t.equal(two.length, 2, `the scale-up was served during the abuse (${Date.now() - scaledAt} ms)`);
  const agents = (await getJson(`${apiUrl}/agents`)) as any[];
  t.ok(agents.find((a) => a.id === 'abuse-agent')?.connected, 'the coordinator sees the agent connected during the abuse');

  await Promise.all(loads);
  // After: the endpoint answers again, and the link never dropped.
  const after = await eventually('the endpoint to answer again', async () => get('/v1/status').catch(() => undefined), 15_000);
  t.equal(after.link.state, 'ready', 'the link is up after the abuse');
  t.equal(after.link.reconnects, before.link.reconnects, 'the link did not reconnect');
  t.equal(agent.child.exitCode, null, 'the agent is still running');
  // The agent's own measure of its event loop over the abuse (perf_hooks, metrics/agent-collector.ts).
  const maxDelay = Number(/^slipway_event_loop_delay_max_seconds (\S+)$/m.exec(await scrape())?.[1]);
  t.ok(Number.isFinite(maxDelay) && maxDelay < LOOP_DELAY_BOUND_S,
    `the agent's event loop lagged at most ${Math.round(maxDelay * 1000)} ms during the abuse (bound ${LOOP_DELAY_BOUND_S * 1000} ms)`);

  t.equal((await formation(0)).status, 200);
  await eventually('no dyno left', async () => ((await get('/v1/dynos')) as any[]).length === 0 || undefined, 30_000);
});
