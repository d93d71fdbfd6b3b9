// `GET /apps/:app/logs?tail=1` through the real coordinator (in-process, on port 0), fed by a
// scripted agent on a real WebSocket that ships log batches as the agent's shipper does. A
// tail client that stops reading must neither stall the coordinator (the other tail and the
// API keep answering) nor grow its memory past the session bound (/healthz logTails), and
// every line it does not get is counted, in the stream itself (Logplex's L11).
import t, { type Test } from 'tap';
import { request, type IncomingMessage } from 'node:http';
import { createRootLogger } from '../../../shared/log.js';
import { DEFAULT_TIMING } from '../../../coordinator/config.js';
import { startCoordinator, type RunningCoordinator } from '../../../coordinator/start.js';
import { TAIL_BUFFER_BYTES } from '../../../coordinator/log-tail.js';
import { DEFAULT_SIZES } from '../../../shared/sizes.js';
import { API_AUTH, getJson, TEST_API_TOKEN } from '../../helpers/http.js';
import { connectScriptedAgent } from '../../helpers/scripted-agent.js';
import { eventually } from '../../helpers/host.js';

const TOKEN = 'agent-token-for-tests-0123456789';

async function coordinator(t: Test, id: string): Promise<RunningCoordinator> {
  const c = await startCoordinator({
    listen: { host: '127.0.0.1', port: 0 }, routerListen: { host: '127.0.0.1', port: 0 }, token: TOKEN, apiTokens: [TEST_API_TOKEN],
    coordinatorId: id, defaultStack: 'busybox', sizes: DEFAULT_SIZES, timing: { ...DEFAULT_TIMING },
  }, createRootLogger({ level: 'silent' }));
  t.teardown(() => c.close());
  return c;
}

function openTail(url: string): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: API_AUTH, agent: false }, resolve);
    req.on('error', reject);
    req.end();
  });
}

t.test('a stalled tail is bounded and told what it lost; a reading tail gets every line in order', async (t) => {
  const c = await coordinator(t, 'tail-test');
  const agent = await connectScriptedAgent({ url: c.agentUrl, token: TOKEN });
  t.teardown(() => agent.close());

  // The stalled reader: its socket is paused from the first byte on (kernel buffers fill, then
  // the coordinator's queue does).
  const stalled = await openTail(`${c.apiUrl}/apps/shop/logs?tail=1&lines=0`);
  t.equal(stalled.statusCode, 200);
  stalled.pause();
  t.teardown(() => stalled.destroy());
  // The reading one, on web.2 only.
  const reading = await openTail(`${c.apiUrl}/apps/shop/logs?tail=1&lines=0&dyno=web.2`);
  let got = '';
  reading.setEncoding('utf8');
  reading.on('data', (s: string) => { got += s; });
  t.teardown(() => reading.destroy());
  await eventually('two tail sessions', async () => ((await getJson(`${c.apiUrl}/healthz`)).logTails.sessions === 2 ? true : undefined), 5_000);

  // 40 MB of app lines (1 KiB each) for web.1, with a web.2 line every 100: far more than the
  // socket buffers and the 1 MiB bound of the stalled session hold.
  const pad = 'x'.repeat(1000);
  const total = 40_000;
  let sentWeb2 = 0;
  // Batches of 500 lines: a frame stays under the link's 1 MiB.
  for (let batch = 0; batch < total / 500; batch++) {
    const lines = Array.from({ length: 500 }, (_, i) => {
      const n = batch * 500 + i;
      const dyno = n % 100 === 0 ? 'web.2' : 'web.1';
      if (dyno === 'web.2') sentWeb2++;
      return { dynoId: `shop-web-${dyno.slice(4)}-x`, app: 'shop', line: `2026-12-03T10:00:00.000Z app[${dyno}]: n=${String(n).padStart(6, '0')} ${pad}` };
    });
    agent.sendLogs(lines);
  }
  const health = await eventually('every batch taken in', async () => {
    const h = await getJson(`${c.apiUrl}/healthz`);
    return got.split('\n').length - 1 >= sentWeb2 ? h : undefined;
  }, 30_000);
  t.equal(got.split('\n').length - 1, sentWeb2, `the reading tail got all ${sentWeb2} web.2 lines`);
  const numbers = got.trim().split('\n').map((l) => Number(/n=(\d+)/.exec(l)?.[1]));
  t.same(numbers, [...numbers].sort((a, b) => a - b), 'in the order they were shipped');
  t.ok(health.logTails.bufferedBytes <= TAIL_BUFFER_BYTES + 2048, `the stalled session holds ${health.logTails.bufferedBytes} bytes, within its ${TAIL_BUFFER_BYTES} bound`);
  t.ok(health.logTails.droppedLines > 30_000, `and dropped the rest (${health.logTails.droppedLines} lines)`);
  t.equal((await getJson(`${c.apiUrl}/apps`)).length, 0, 'the API answers meanwhile');

  // The stalled reader reads again: what it gets plus what it is told it lost is everything.
  let stalledText = '';
  stalled.setEncoding('utf8');
  stalled.on('data', (s: string) => { stalledText += s; });
  stalled.resume();
  const dropped = await eventually('the L11 notice', async () => {
    const m = /slipway\[logplex\]: Error L11 \(Tail buffer overflow\): (\d+) messages dropped since \S+\.\n/.exec(stalledText);
    return m ? Number(m[1]) : undefined;
  }, 10_000);
  const delivered = await eventually('the stalled tail to catch up', async () => {
    const n = stalledText.split('\n').filter((l) => l.includes(' app[')).length;
    return n + dropped === total ? n : undefined;
  }, 10_000);
  t.equal(delivered + dropped, total, `${delivered} delivered + ${dropped} dropped = ${total} shipped: nothing lost without a count`);
  const lastNumber = Number(/n=(\d+)/.exec(stalledText.trim().split('\n').at(-1) ?? '')?.[1]);
  t.equal(lastNumber, total - 1, 'the newest lines were kept, the oldest dropped');
});

t.test('a tail with a bad filter or without the token is refused', async (t) => {
  const c = await coordinator(t, 'tail-test-2');
  const bad = await new Promise<IncomingMessage>((resolve, reject) => {
    request(`${c.apiUrl}/apps/shop/logs?source=router`, { headers: API_AUTH }, resolve).on('error', reject).end();
  });
  t.equal(bad.statusCode, 422, 'an unknown source is refused');
  bad.resume();
  const noToken = await new Promise<IncomingMessage>((resolve, reject) => {
    request(`${c.apiUrl}/apps/shop/logs?tail=1`, {}, resolve).on('error', reject).end();
  });
  t.equal(noToken.statusCode, 401, 'a tail needs the API token');
  noToken.resume();
});
