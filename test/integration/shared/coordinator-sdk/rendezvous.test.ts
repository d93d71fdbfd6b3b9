// The rendezvous of an attached one-off dyno, on a real HTTP server with real WebSocket legs
// (a CLI and an agent, played by `ws` clients): each leg's secret admits that leg once, frames
// pass both ways as they were, a slow CLI pushes back to the agent instead of growing the
// coordinator's memory (100 MB through a paused reader, the relay's in-flight bytes sampled
// throughout), a lost CLI closes the agent's leg with peerGone, and a leg alone is closed
// with peerMissing after the bound.
import t, { type Test } from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket } from 'ws';
import { Rendezvous } from '../../../../shared/coordinator-sdk/rendezvous.js';
import { ATTACH_CLOSE, ATTACH_STDIN, ATTACH_STDOUT, RENDEZVOUS_PATH, attachFrame, readAttachFrame } from '../../../../shared/attach.js';
import { quietLogger } from '../../../helpers/host.js';

async function relay(t: Test, options: { peerWaitMs?: number; highWaterBytes?: number } = {}): Promise<{ rv: Rendezvous; url: (id: string) => string; server: Server }> {
  const rv = new Rendezvous({ log: quietLogger(), ...options });
  const server = createServer((_req, res) => { res.writeHead(404).end(); });
  server.on('upgrade', (req, socket, head) => {
    if (!rv.handleUpgrade(req, socket, head)) socket.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => { rv.close(); server.closeAllConnections(); server.close(); });
  const port = (server.address() as AddressInfo).port;
  return { rv, server, url: (id) => `ws://127.0.0.1:${port}${RENDEZVOUS_PATH}${id}` };
}

/** A leg; what it receives is in `got` from the first frame on (a frame may come with the
 * upgrade's answer, before the caller could listen). */
function dial(url: string, secret: string): Promise<WebSocket & { got: (string | Buffer)[] }> {
  return new Promise((resolve, reject) => {
    const ws = Object.assign(new WebSocket(url, { headers: { authorization: `Bearer ${secret}` }, handshakeTimeout: 5_000 }), { got: [] as (string | Buffer)[] });
    ws.on('message', (d: Buffer, binary) => ws.got.push(binary ? d : d.toString('utf8')));
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
    ws.once('error', reject);
  });
}

const closed = (ws: WebSocket): Promise<number> => new Promise((r) => ws.once('close', (code) => r(code)));

t.test('each secret admits its own leg once; a wrong one or an unknown session gets 401', async (t) => {
  const { rv, url } = await relay(t);
  const ticket = rv.open('shop run.1');
  await t.rejects(dial(url(ticket.id), 'not-the-secret'), { message: 'HTTP 401' });
  await t.rejects(dial(url('0'.repeat(32)), ticket.cliSecret), { message: 'HTTP 401' }, 'a secret of another session');
  const cli = await dial(url(ticket.id), ticket.cliSecret);
  t.teardown(() => cli.terminate());
  await t.rejects(dial(url(ticket.id), ticket.cliSecret), { message: 'HTTP 409' }, 'a second CLI leg is refused (ATTACH_LEG_TAKEN)');
  const agent = await dial(url(ticket.id), ticket.agentSecret);
  t.teardown(() => agent.terminate());
  t.same(rv.stats(), { sessions: 1, inFlightBytes: 0 });
});

t.test('frames pass both ways as they were, binary and control alike', async (t) => {
  const { rv, url } = await relay(t);
  const ticket = rv.open('shop run.2');
  const cli = await dial(url(ticket.id), ticket.cliSecret);
  // What the CLI sends before the agent is there waits for it.
  cli.send(attachFrame(ATTACH_STDIN, Buffer.from('hi\n')));
  cli.send(JSON.stringify({ type: 'eof' }));
  const agent = await dial(url(ticket.id), ticket.agentSecret);
  const atAgent = agent.got;
  const atCli = cli.got;
  await new Promise((r) => setTimeout(r, 200));
  t.same(readAttachFrame(atAgent[0] as Buffer), { channel: ATTACH_STDIN, data: Buffer.from('hi\n') }, 'stdin reached the agent');
  t.equal(atAgent[1], '{"type":"eof"}', 'then the end of stdin, as text');
  agent.send(attachFrame(ATTACH_STDOUT, Buffer.from('hi\n')));
  agent.send(JSON.stringify({ type: 'exit', code: 0, signal: null, oomKilled: false }));
  const cliClosed = closed(cli);
  agent.close(1000, 'exited');
  t.equal(await cliClosed, 1000, "the agent's normal close is passed on");
  t.same(readAttachFrame(atCli[0] as Buffer), { channel: ATTACH_STDOUT, data: Buffer.from('hi\n') });
  t.match(JSON.parse(atCli[1] as string), { type: 'exit', code: 0 });
  t.equal(rv.stats().sessions, 0, 'the session is gone');
});

t.test('100 MB to a paused CLI: the relay holds at most its high-water mark, and every byte arrives in order', async (t) => {
  const highWaterBytes = 1024 * 1024;
  const { rv, url } = await relay(t, { highWaterBytes });
  const ticket = rv.open('shop run.3');
  const cli = await dial(url(ticket.id), ticket.cliSecret);
  const agent = await dial(url(ticket.id), ticket.agentSecret);
  t.teardown(() => { cli.terminate(); agent.terminate(); });
  const total = 100 * 1024 * 1024;
  const chunk = 64 * 1024;
  const sent = createHash('sha256');
  const got = createHash('sha256');
  let received = 0;
  cli.on('message', (d: Buffer) => {
    const f = readAttachFrame(d);
    if (f) { got.update(f.data); received += f.data.length; }
  });
  // The CLI reads nothing for the first 2 s.
  cli.pause();
  setTimeout(() => cli.resume(), 2_000);
  let most = 0;
  const sampler = setInterval(() => { most = Math.max(most, rv.stats().inFlightBytes); }, 5);
  const started = Date.now();
  // The agent sends as an agent must: no more than 1 MiB queued on its own socket.
  for (let off = 0; off < total; off += chunk) {
    const data = randomBytes(chunk);
    sent.update(data);
    agent.send(attachFrame(ATTACH_STDOUT, data));
    while (agent.bufferedAmount > 1024 * 1024) await new Promise((r) => setTimeout(r, 2));
    if (Date.now() - started > 60_000) break;
  }
  const deadline = Date.now() + 60_000;
  while (received < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  clearInterval(sampler);
  t.equal(received, total, 'all 100 MB arrived');
  t.equal(got.digest('hex'), sent.digest('hex'), 'byte for byte, in order');
  t.ok(most <= highWaterBytes + chunk + 16, `the relay held at most ${most} bytes (high water ${highWaterBytes} + one frame)`);
  t.ok(most > 0, 'and did hold some while the CLI was paused');
});

t.test('a lost CLI closes the agent leg with peerGone; a leg alone is closed with peerMissing', async (t) => {
  const { rv, url } = await relay(t, { peerWaitMs: 300 });
  const ticket = rv.open('shop run.4');
  const ended: number[] = [];
  const t2 = rv.open('shop run.5', (how) => ended.push(how.code));
  const cli = await dial(url(ticket.id), ticket.cliSecret);
  const agent = await dial(url(ticket.id), ticket.agentSecret);
  const agentClosed = closed(agent);
  cli.terminate();
  t.equal(await agentClosed, ATTACH_CLOSE.peerGone, 'the agent hears that the CLI is gone');
  const alone = await dial(url(t2.id), t2.agentSecret);
  t.equal(await closed(alone), ATTACH_CLOSE.peerMissing, 'nobody came for the agent leg within the bound');
  t.same(ended, [ATTACH_CLOSE.peerMissing], 'onEnd heard it once');
  t.equal(rv.stats().sessions, 0);
});
