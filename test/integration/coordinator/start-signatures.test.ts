// The reference coordinator carries a slug's signature from its HTTP API to the agents: the
// coordinator in-process on port 0, a real `ws` client speaking the agent protocol. What the
// agent does with the signature is test/integration/agent/slugs/store-signatures.test.ts.
import { EventEmitter, once } from 'node:events';
import { request } from 'node:http';
import t, { type Test } from 'tap';
import { WebSocket } from 'ws';
import { createRootLogger } from '../../../shared/log.js';
import { DEFAULT_TIMING } from '../../../coordinator/config.js';
import { startCoordinator, type RunningCoordinator } from '../../../coordinator/start.js';
import { MAX_SLUG_SIGNATURE_CHARS, type CoordinatorMessage, type PrefetchSlug, type StartDyno, type Welcome } from '../../../shared/protocol.js';
import { DEFAULT_SIZES } from '../../../shared/sizes.js';
import { API_AUTH, TEST_API_TOKEN } from '../../helpers/http.js';

const TOKEN = 'agent-token-for-tests-0123456789';
const MIB = 1024 * 1024;
/** A signature as minisign writes it; the coordinator passes it on without reading it. */
const SIGNATURE = [
  'untrusted comment: signature from minisign secret key',
  'RUQfe52KKS5xaUcC9aFr4GBbdmCc5bkmslc2HT1i7rUfFXCI/Yqmd/Xo75OT5ii21SpYzjok6pYYCbM+RHFmQ1ktFbi1ZTd0RQY=',
  'trusted comment: release v42 of demo',
  'MhU1CBRJTvqqgH2eFRbQK2XxdipOncmkZqaKEur9apgsvWJqwLB2YCbyAl9oeYMofJzFIa4B/DPrYLhn/iRLCw==',
  '',
].join('\n');
const slug = (signature?: string) => ({ url: 'http://127.0.0.1:1/slug.tgz', sha256: 'a'.repeat(64), ...(signature === undefined ? {} : { signature }) });
const formation = (quantity: number, signature?: string) => ({ quantity, size: 'standard-1x', command: 'httpd -f -p $PORT', slug: slug(signature) });

async function coordinator(t: Test): Promise<RunningCoordinator> {
  const c = await startCoordinator({
    listen: { host: '127.0.0.1', port: 0 }, routerListen: { host: '127.0.0.1', port: 0 }, token: TOKEN, apiTokens: [TEST_API_TOKEN],
    coordinatorId: 'test-coordinator', defaultStack: 'busybox', sizes: DEFAULT_SIZES,
    timing: { ...DEFAULT_TIMING, commandTimeoutMs: 5_000 },
  }, createRootLogger({ level: 'silent' }));
  t.teardown(() => c.close());
  return c;
}

function api(method: string, url: string, body?: unknown): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent: false, headers: { 'content-type': 'application/json', ...API_AUTH } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined }));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** An agent that says hello and admits every command (a started dyno is up); it records what it was sent. */
async function agent(t: Test, url: string): Promise<{ received: CoordinatorMessage[]; welcome: Promise<Welcome>; close(): Promise<void> }> {
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${TOKEN}` } });
  const received: CoordinatorMessage[] = [];
  const inbox = new EventEmitter();
  const close = async (): Promise<void> => {
    if (ws.readyState === WebSocket.CLOSED) return;
    const closed = once(ws, 'close');
    ws.terminate();
    await closed;
  };
  t.teardown(close);
  ws.on('message', (data) => {
    const m = JSON.parse((data as Buffer).toString('utf8')) as CoordinatorMessage;
    received.push(m);
    inbox.emit(m.type, m);
    // A started dyno is up at once, as a booted dyno would report: a release change stops
    // the old dynos only once their replacements are up (preboot).
    if (m.type === 'start_dyno') {
      const { id, app, type, name, size } = m.dyno;
      const dyno = { id, app, type, name, state: 'up', memoryMb: size.memoryMb, since: new Date().toISOString(), endpoint: { host: '127.0.0.1', port: 5000 } };
      ws.send(JSON.stringify({ type: 'result', id: m.id, ok: true, dyno }));
    }
    if (m.type === 'stop_dyno') ws.send(JSON.stringify({ type: 'result', id: m.id, ok: true }));
    if (m.type === 'prefetch_slug') ws.send(JSON.stringify({ type: 'result', id: m.id, ok: true, slug: { sha256: m.slug.sha256, cached: false } }));
  });
  await once(ws, 'open');
  const welcome = once(inbox, 'welcome').then(([w]) => w as Welcome);
  ws.send(JSON.stringify({
    type: 'hello', protocol: 1, seqEpoch: 'epoch-0001',
    agent: { id: 'host-a', hostname: 'host-a.internal', address: '127.0.0.1', version: '0.1.0', runtime: 'fake' },
    capacity: {
      memory: { totalBytes: 8192 * MIB, reservedBytes: 1024 * MIB, allocatableBytes: 4096 * MIB, committedBytes: 0, usedBytes: 0 },
      cpu: { cores: 2, load1: 0 }, dynoCount: 0, slugCache: { entries: 0, bytes: 0, budgetBytes: 0, freeBytes: 0, slugs: [] }, accepting: true,
    },
    dynos: [],
  }));
  await welcome;
  return { received, welcome, close };
}

const starts = (received: CoordinatorMessage[]) => received.filter((m): m is StartDyno => m.type === 'start_dyno');

t.test('the formation API passes the slug signature to the agent in start_dyno', async (t) => {
  const c = await coordinator(t);
  const a = await agent(t, c.agentUrl);
  t.equal((await api('PUT', `${c.apiUrl}/apps/shop/formation/web`, formation(1, SIGNATURE))).status, 200);
  t.same(starts(a.received).map((s) => s.dyno.slug), [slug(SIGNATURE)], 'the .minisig text arrives as it was given');

  t.equal((await api('PUT', `${c.apiUrl}/apps/shop/formation/web`, formation(1, SIGNATURE))).status, 200);
  t.equal(starts(a.received).length, 1, 'the same signature again replaces nothing');

  const resigned = SIGNATURE.replace('release v42', 'release v42, re-signed');
  t.equal((await api('PUT', `${c.apiUrl}/apps/shop/formation/web`, formation(1, resigned))).status, 200);
  const all = starts(a.received);
  t.equal(all.length, 2, 'a new signature replaces the dyno (rotation leaves none with the old one)');
  t.same(all[1]?.dyno.slug, slug(resigned));
  t.same(a.received.filter((m) => m.type === 'stop_dyno').map((m) => m.type === 'stop_dyno' && m.dynoId), [all[0]?.dyno.id], 'the old dyno is stopped');

  const view = (await api('GET', `${c.apiUrl}/apps/shop/formation`)).json;
  t.same(view[0].slug, { sha256: 'a'.repeat(64) }, 'the formation view shows the slug by digest only');
});

t.test('an unsigned formation still works, and its dynos carry no signature', async (t) => {
  const c = await coordinator(t);
  const a = await agent(t, c.agentUrl);
  t.equal((await api('PUT', `${c.apiUrl}/apps/shop/formation/web`, formation(1))).status, 200);
  t.same(starts(a.received)[0]?.dyno.slug, slug());
});

t.test('a dyno restarted from the welcome\'s desired set keeps its signature', async (t) => {
  const c = await coordinator(t);
  const first = await agent(t, c.agentUrl);
  t.equal((await api('PUT', `${c.apiUrl}/apps/shop/formation/web`, formation(1, SIGNATURE))).status, 200);
  await first.close();
  // The agent comes back without the dyno (its start was lost): the welcome hands the spec back.
  const again = await agent(t, c.agentUrl);
  const welcome = await again.welcome;
  t.same(welcome.desired?.map((d) => d.spec?.slug), [slug(SIGNATURE)]);
});

t.test('POST /slugs/prefetch passes the signature in prefetch_slug; an oversized one is refused', async (t) => {
  const c = await coordinator(t);
  const a = await agent(t, c.agentUrl);
  const res = await api('POST', `${c.apiUrl}/slugs/prefetch`, { slug: slug(SIGNATURE) });
  t.equal(res.status, 200);
  t.same(a.received.filter((m): m is PrefetchSlug => m.type === 'prefetch_slug').map((m) => m.slug), [slug(SIGNATURE)]);
  const huge = 'x'.repeat(MAX_SLUG_SIGNATURE_CHARS + 1);
  t.match(await api('POST', `${c.apiUrl}/slugs/prefetch`, { slug: slug(huge) }), { status: 422, json: { error: { code: 'PROTOCOL_SCHEMA_VIOLATION' } } });
  t.match(await api('PUT', `${c.apiUrl}/apps/shop/formation/web`, formation(1, huge)), { status: 422, json: { error: { code: 'PROTOCOL_SCHEMA_VIOLATION', message: /signature/ } } });
  t.match(await api('PUT', `${c.apiUrl}/apps/shop/formation/web`, formation(1, '')), { status: 422 }, 'an empty signature is not "no signature"');
});
