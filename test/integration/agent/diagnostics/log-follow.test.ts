// `GET /v1/dynos/:id/logs?follow=1` on the real diagnostics server (loopback port 0), fed by a
// real LogShipper (its subscribe) behind a small AgentView, as start.ts wires it. Shown: the last
// lines, then each new one as it is kept; the end when the dyno goes away; the subscription
// dropped when the client leaves; a reader that stops reading holds at most the bound in the
// agent's memory while the rest is dropped and counted; follows count against the connection
// limit; a quiet follow outlives the request timeout; an unknown dyno is DYNO_NOT_FOUND.
import { once } from 'node:events';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { request, type IncomingMessage, type ServerResponse } from 'node:http';
import t, { type Test } from 'tap';
import { createDiagnosticsServer, DIAGNOSTICS_MAX_CONNECTIONS, DIAGNOSTICS_REQUEST_TIMEOUT_MS, DIAGNOSTICS_TIMEOUT_CHECK_MS, type AgentView } from '../../../../agent/diagnostics/server.js';
import { FOLLOW_MAX_BUFFERED_BYTES } from '../../../../agent/diagnostics/log-follow.js';
import { LogShipper } from '../../../../agent/dynos/log-shipper.js';
import { createRootLogger } from '../../../../shared/log.js';
import { eventually } from '../../../helpers/host.js';
import { http } from '../../../helpers/http.js';

const TOKEN = 'follow-test-token-0123456789abcdef';
const DYNO = { dynoId: 'shop-web-1-abc', app: 'shop', name: 'web.1' };

function fixture(t: Test) {
  const shipper = new LogShipper();
  const present = new Set([DYNO.dynoId]);
  let subscribed = 0;
  const view: AgentView = {
    identity: () => ({ id: 'agent-1', hostname: 'h', address: '127.0.0.1', version: 'test', runtime: 'fake' }),
    dynos: () => [...present].map((id) => ({ id, app: 'shop', type: 'web', name: 'web.1', state: 'up', memoryMb: 512, since: new Date().toISOString() })),
    capacity: async () => { throw new Error('not needed'); },
    link: () => ({ state: 'ready' }) as ReturnType<AgentView['link']>,
    dynoLog: async (id, n) => (present.has(id) ? shipper.recent(id, n) : undefined),
    slugs: async () => { throw new Error('not needed'); },
    followLog: (id, onLine) => {
      if (!present.has(id)) return undefined;
      const stop = shipper.subscribe(id, onLine);
      subscribed++;
      return () => { stop(); subscribed--; };
    },
  };
  const server = createDiagnosticsServer(view, TOKEN, createRootLogger({ level: 'silent' }));
  const responses: ServerResponse[] = [];
  server.on('request', (_req: IncomingMessage, res: ServerResponse) => responses.push(res));
  t.teardown(() => new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  }));
  return { shipper, present, server, responses, subscribed: () => subscribed };
}

async function listen(server: ReturnType<typeof createDiagnosticsServer>): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** A follow as `slipway-agent logs -f` makes it; `messages` fills as NDJSON arrives. */
async function follow(port: number, id = DYNO.dynoId, lines = 10) {
  const messages: Record<string, unknown>[] = [];
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: `/v1/dynos/${id}/logs?follow=1&lines=${lines}`, headers: { authorization: `Bearer ${TOKEN}` } }, resolve);
    req.on('error', reject);
    req.end();
  });
  let buf = '';
  res.setEncoding('utf8');
  res.on('data', (c: string) => {
    buf += c;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      messages.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
      buf = buf.slice(nl + 1);
    }
  });
  const ended = new Promise<void>((resolve) => res.on('close', () => resolve()));
  return { res, messages, ended };
}

t.test('the last lines, then each new one; the end when the dyno goes away', async (t) => {
  const f = fixture(t);
  const port = await listen(f.server);
  f.shipper.system(DYNO, 'before 1');
  f.shipper.system(DYNO, 'before 2');
  const s = await follow(port, DYNO.dynoId, 1);
  t.equal(s.res.statusCode, 200);
  t.equal(s.res.headers['content-type'], 'application/x-ndjson');
  await eventually('the last line', () => (s.messages.length >= 1 ? true : undefined));
  t.match(s.messages[0], { line: /slipway\[web\.1\]: before 2$/ }, 'lines=1: only the last one');
  f.shipper.system(DYNO, 'after');
  await eventually('the new line', () => (s.messages.length >= 2 ? true : undefined));
  t.match(s.messages[1], { line: /slipway\[web\.1\]: after$/ });
  t.equal(f.subscribed(), 1);
  f.present.delete(DYNO.dynoId);
  await s.ended;
  t.same(s.messages.at(-1), { end: 'the dyno is no longer on this host' });
  t.equal(f.subscribed(), 0, 'unsubscribed');
});

t.test('the client leaving ends the subscription; an unknown dyno is DYNO_NOT_FOUND', async (t) => {
  const f = fixture(t);
  const port = await listen(f.server);
  const s = await follow(port);
  t.equal(f.subscribed(), 1);
  s.res.destroy();
  await eventually('unsubscribed', () => (f.subscribed() === 0 ? true : undefined), 5_000);
  t.pass('the agent stops feeding a client that left');
  const unknown = await http('GET', `http://127.0.0.1:${port}/v1/dynos/shop-web-9-zzz/logs?follow=1`, undefined, { authorization: `Bearer ${TOKEN}` });
  t.equal(unknown.status, 404);
  t.match(JSON.parse(unknown.body), { error: { code: 'DYNO_NOT_FOUND' } });
  t.equal(f.subscribed(), 0);
});

t.test('a reader that stops reading: the agent holds at most the bound, drops the rest and says how many', async (t) => {
  const f = fixture(t);
  const port = await listen(f.server);
  // A raw client that sends the request and then reads nothing.
  const sock: Socket = connect(port, '127.0.0.1');
  await once(sock, 'connect');
  sock.write(`GET /v1/dynos/${DYNO.dynoId}/logs?follow=1&lines=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`);
  await eventually('the follow to start', () => (f.subscribed() === 1 ? true : undefined));
  sock.pause();
  const text = 'x'.repeat(1000);
  const total = 20_000;
  let maxHeld = 0;
  for (let i = 0; i < total; i++) {
    f.shipper.system(DYNO, `${i} ${text}`);
    maxHeld = Math.max(maxHeld, f.responses[0]!.writableLength);
    if (i % 1000 === 0) await new Promise((r) => setImmediate(r));
  }
  t.ok(maxHeld <= FOLLOW_MAX_BUFFERED_BYTES + 1100, `the agent held at most ${maxHeld} bytes for it (bound ${FOLLOW_MAX_BUFFERED_BYTES} + one line)`);
  // Now read everything: the lines that came and the dropped counts add up to what was written.
  let raw = '';
  sock.setEncoding('utf8');
  sock.on('data', (c: string) => { raw += c; });
  sock.resume();
  await eventually('the reader to catch up', () => (f.responses[0]!.writableLength === 0 ? true : undefined), 10_000);
  f.shipper.system(DYNO, 'last');
  await eventually('the last line', () => (raw.includes('slipway[web.1]: last') ? true : undefined), 10_000);
  const objects = [...raw.matchAll(/\{"(line|dropped)":("(?:[^"\\]|\\.)*"|\d+)\}/g)].map((m) => ({ kind: m[1], value: m[2] }));
  const lines = objects.filter((o) => o.kind === 'line' && /"\d+ x+"$/.test(o.value!.replace(/^"\S+ slipway\[web\.1\]: /, '"'))).length;
  const dropped = objects.filter((o) => o.kind === 'dropped').reduce((n, o) => n + Number(o.value), 0);
  t.ok(dropped > 0, `${dropped} lines dropped and reported`);
  t.equal(lines + dropped, total, `${lines} delivered + ${dropped} dropped = ${total} written`);
  sock.destroy();
});

t.test('follows count against the connection limit', async (t) => {
  const f = fixture(t);
  const port = await listen(f.server);
  const follows = [];
  for (let i = 0; i < DIAGNOSTICS_MAX_CONNECTIONS; i++) follows.push(await follow(port));
  t.equal(f.subscribed(), DIAGNOSTICS_MAX_CONNECTIONS);
  await t.rejects(http('GET', `http://127.0.0.1:${port}/healthz`), 'one more connection is closed at accept');
  follows[0]!.res.destroy();
  await eventually('room again', async () => ((await http('GET', `http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.status === 200 ? true : undefined), 5_000);
  t.pass('a follow that ends frees its connection');
  for (const s of follows) s.res.destroy();
});

t.test('a quiet follow outlives the request timeout (it bounds receiving the request, not the answer)', async (t) => {
  const f = fixture(t);
  const port = await listen(f.server);
  const s = await follow(port);
  await new Promise((r) => setTimeout(r, DIAGNOSTICS_REQUEST_TIMEOUT_MS + 2 * DIAGNOSTICS_TIMEOUT_CHECK_MS));
  f.shipper.system(DYNO, 'still here');
  await eventually('the line', () => (s.messages.some((m) => typeof m.line === 'string' && m.line.endsWith('still here')) ? true : undefined), 5_000);
  t.pass(`a line written ${DIAGNOSTICS_REQUEST_TIMEOUT_MS + 2 * DIAGNOSTICS_TIMEOUT_CHECK_MS} ms after the follow began arrives`);
  s.res.destroy();
});
