// The reference coordinator (in-process, on the SDK's AgentServer) against hostile agents on
// real WebSocket connections: an oversize frame (1009), a fragment flood (1008), 10,000
// messages a second (1008). A well-behaved agent on another link is not disturbed, and the
// coordinator's memory stays bounded.
import { once } from 'node:events';
import t, { type Test } from 'tap';
import { WebSocket } from 'ws';
import { createRootLogger } from '../../../../shared/log.js';
import { DEFAULT_TIMING } from '../../../../coordinator/config.js';
import { startCoordinator } from '../../../../coordinator/start.js';
import { MAX_FRAGMENTS } from '../../../../shared/link-guard.js';
import { MAX_FRAME_BYTES } from '../../../../shared/protocol.js';
import { DEFAULT_SIZES } from '../../../../shared/sizes.js';
import { CAPACITY, helloFor, TOKEN, until } from '../../agent/link/fixtures/link.js';
import { API_AUTH, TEST_API_TOKEN } from '../../../helpers/http.js';

async function coordinator(t: Test) {
  const c = await startCoordinator({
    listen: { host: '127.0.0.1', port: 0 }, routerListen: { host: '127.0.0.1', port: 0 }, token: TOKEN, apiTokens: [TEST_API_TOKEN],
    coordinatorId: 'hostile-test', defaultStack: 'busybox', sizes: DEFAULT_SIZES, timing: { ...DEFAULT_TIMING },
  }, createRootLogger({ level: 'silent' }));
  t.teardown(() => c.close());
  return c;
}

async function agent(t: Test, url: string, id: string) {
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${TOKEN}` }, maxPayload: 0, perMessageDeflate: false });
  ws.on('error', () => undefined);
  t.teardown(() => ws.terminate());
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString('utf8') })));
  await once(ws, 'open');
  ws.send(JSON.stringify(helloFor(id)));
  await new Promise<void>((resolve) => ws.once('message', () => resolve()));
  return { ws, closed };
}

const health = async (apiUrl: string) => (await (await fetch(`${apiUrl}/healthz`, { headers: API_AUTH })).json()) as { agentsConnected: number; links: { invalidFrames: Record<string, number> } };

t.test('oversize frame: 1009; fragment flood and message flood: 1008; a calm agent keeps its link', async (t) => {
  const c = await coordinator(t);
  const calm = await agent(t, c.agentUrl, 'calm-agent');
  const heapBefore = process.memoryUsage().heapUsed;

  const big = await agent(t, c.agentUrl, 'big-agent');
  big.ws.send('x'.repeat(MAX_FRAME_BYTES + 1));
  t.equal((await big.closed).code, 1009, 'a frame over MAX_FRAME_BYTES: message too big');

  const fragments = await agent(t, c.agentUrl, 'fragment-agent');
  for (let n = 0; n < MAX_FRAGMENTS * 20; n++) fragments.ws.send('x', { fin: false });
  // ws's maxFragments closes by itself, with 1008 and no reason; /healthz counts it below.
  t.same(await fragments.closed, { code: 1008, reason: '' }, "closed by ws's fragment bound");

  const flood = await agent(t, c.agentUrl, 'flood-agent');
  const report = JSON.stringify({ type: 'capacity', capacity: CAPACITY });
  for (let burst = 0; burst < 10 && flood.ws.readyState === flood.ws.OPEN; burst++) {
    for (let n = 0; n < 1000; n++) flood.ws.send(report);
    await new Promise((r) => setTimeout(r, 100));
  }
  t.match(await flood.closed, { code: 1008, reason: 'message_flood' });

  const h = await until('the health counters', async () => {
    const x = await health(c.apiUrl);
    return x.links.invalidFrames.message_flood && x.agentsConnected === 1 ? x : undefined;
  });
  t.match(h.links.invalidFrames, { fragment_flood: 1, message_flood: 1 }, 'each closure is counted');
  t.equal(h.agentsConnected, 1, 'only the calm agent is still connected (the others were cut)');
  t.equal(calm.ws.readyState, calm.ws.OPEN, 'the calm agent kept its link');
  calm.ws.send(JSON.stringify({ type: 'capacity', capacity: CAPACITY }));
  const grown = process.memoryUsage().heapUsed - heapBefore;
  t.ok(grown < 64 * 1024 * 1024, `heap grew ${(grown / 1048576).toFixed(1)} MB`);
});
