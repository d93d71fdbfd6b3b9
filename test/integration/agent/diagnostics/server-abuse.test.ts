// The diagnostics endpoint under abuse by a local client (issue 14, item 6): the real server on
// loopback port 0, reading an AgentView built like the agent's. Each load is refused or served,
// and the agent goes on: the event loop the server shares with dyno supervision and the
// coordinator link stays responsive (fixtures/view.ts, watchLoop). Every load is bounded in
// count and time.
import { once } from 'node:events';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import {
  DIAGNOSTICS_HEADERS_TIMEOUT_MS, DIAGNOSTICS_MAX_CONNECTIONS, DIAGNOSTICS_MAX_HEADERS, DIAGNOSTICS_TIMEOUT_CHECK_MS,
} from '../../../../agent/diagnostics/server.js';
import { http } from '../../../helpers/http.js';
import { TOKEN, auth, diagnosticsServer, watchLoop } from './fixtures/view.js';

async function serve(t: Test) {
  const server = diagnosticsServer(t);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return { server, port, url: `http://127.0.0.1:${port}` };
}

interface Exchange {
  /** What the server sent back before the connection ended. */
  response: string;
  /** The connection's error (ECONNRESET, EPIPE), or TEST_BOUND when the test's bound cut it. */
  error: string | undefined;
  ms: number;
}

/** One loopback connection: `send` writes to it; resolves when it is closed, by either side or
 * by the bound. */
function converse(port: number, boundMs: number, send: (socket: Socket) => void): Promise<Exchange> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let error: string | undefined;
    const bound = setTimeout(() => { error = 'TEST_BOUND'; socket.destroy(); }, boundMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err: NodeJS.ErrnoException) => { error ??= err.code ?? err.message; });
    socket.on('close', () => {
      clearTimeout(bound);
      resolve({ response: Buffer.concat(chunks).toString('latin1'), error, ms: performance.now() - started });
    });
    socket.once('connect', () => send(socket));
  });
}

function answerOf(response: string): { status: number; code: string | undefined; message: string | undefined } {
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(response)?.[1] ?? 0);
  const at = response.indexOf('\r\n\r\n');
  let body = response.slice(at + 4);
  // One chunk and the last: what node sends for a short answer with `connection: close`.
  if (/\r\ntransfer-encoding: chunked\r\n/i.test(response.slice(0, at + 2))) body = body.replace(/^[0-9a-f]+\r\n/i, '').replace(/\r\n0\r\n\r\n$/, '');
  try {
    const e = (JSON.parse(body) as { error: { code: string; message: string } }).error;
    return { status, code: e.code, message: e.message };
  } catch {
    return { status, code: undefined, message: undefined };
  }
}

const head = (path: string, extra = ''): string => `GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${TOKEN}\r\n${extra}`;

t.test('2,000 headers are refused with HTTP_HEADERS_TOO_LARGE by their bytes, 200 short ones by their count', async (t) => {
  const { port } = await serve(t);
  const loop = watchLoop(t);

  const wide = Array.from({ length: 2_000 }, (_, i) => `x-header-${i}: value-${i}\r\n`).join('');
  const bytes = answerOf((await converse(port, 5_000, (s) => s.write(`${head('/v1/status', wide)}\r\n`))).response);
  t.match(bytes, { status: 431, code: 'HTTP_HEADERS_TOO_LARGE', message: /over 8192 bytes or 32 headers/ }, `2,000 headers of ~22 bytes (${wide.length} bytes): over the byte bound`);

  // 2,000 headers are over 8 KiB however short; 200 short ones (~1.7 KB) show the count's bound.
  const empty = Array.from({ length: 200 }, (_, i) => `h${i}: v\r\n`).join('');
  const count = answerOf((await converse(port, 5_000, (s) => s.write(`${head('/v1/status', empty)}\r\n`))).response);
  t.match(count, { status: 431, code: 'HTTP_HEADERS_TOO_LARGE', message: /over 8192 bytes or 32 headers/ }, `200 short headers (${empty.length} bytes, under the byte bound): over the count`);

  // host, authorization, connection and 29 more: the bound itself, answered.
  const atBound = Array.from({ length: DIAGNOSTICS_MAX_HEADERS - 3 }, (_, i) => `x-h-${i}: v\r\n`).join('');
  const ok = await converse(port, 5_000, (s) => s.write(`${head('/v1/status', `${atBound}connection: close\r\n`)}\r\n`));
  t.equal(answerOf(ok.response).status, 200, `a request with ${DIAGNOSTICS_MAX_HEADERS} headers is answered`);
  loop.check('2,000 headers');
});

t.test('a client sending a header byte a second is cut at the headers timeout; others are answered meanwhile', async (t) => {
  const { port, url } = await serve(t);
  const loop = watchLoop(t);
  let dribble: NodeJS.Timeout | undefined;
  t.teardown(() => clearInterval(dribble));
  const slow = converse(port, DIAGNOSTICS_HEADERS_TIMEOUT_MS + 10_000, (s) => {
    s.write('GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: ');
    dribble = setInterval(() => { if (s.writable) s.write('a'); }, 1_000);
  });
  await sleep(2_000);
  const meanwhile = await http('GET', `${url}/healthz`);
  t.equal(meanwhile.status, 200, 'another client is answered while the slow one dribbles');
  const cut = await slow;
  clearInterval(dribble);
  t.equal(answerOf(cut.response).status, 408, 'the slow client is answered 408');
  t.not(cut.error, 'TEST_BOUND', 'the server closed the connection, not the test');
  t.ok(cut.ms >= DIAGNOSTICS_HEADERS_TIMEOUT_MS - 100 && cut.ms < DIAGNOSTICS_HEADERS_TIMEOUT_MS + DIAGNOSTICS_TIMEOUT_CHECK_MS + 1_000,
    `closed after ${Math.round(cut.ms)} ms: the headers timeout (${DIAGNOSTICS_HEADERS_TIMEOUT_MS} ms) plus at most one check (${DIAGNOSTICS_TIMEOUT_CHECK_MS} ms)`);
  loop.check('slow headers');
});

const GIB = 1024 ** 3;
/** The body's bytes the test may see sent before the cut: socket buffers on loopback hold a few
 * MiB; a server that read the body would take all of the GiB. */
const SENT_BOUND = 64 * 1024 ** 2;
/** Growth of this process's RSS (the server's) the upload may cause: a buffered body would be 1 GiB. */
const RSS_BOUND = 64 * 1024 ** 2;

for (const framing of ['content-length', 'chunked'] as const) {
  t.test(`a 1 GiB body (${framing}) is refused at once and its upload cut, never buffered`, async (t) => {
    const { port, url } = await serve(t);
    const loop = watchLoop(t);
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const frame = framing === 'chunked' ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]) : chunk;
    const announce = framing === 'chunked' ? 'transfer-encoding: chunked\r\n' : `content-length: ${GIB}\r\n`;
    const rssBefore = process.memoryUsage.rss();
    let rssPeak = rssBefore;
    const sampler = setInterval(() => { rssPeak = Math.max(rssPeak, process.memoryUsage.rss()); }, 20);
    t.teardown(() => clearInterval(sampler));
    let sent = 0;
    const upload = await converse(port, 30_000, (s) => {
      s.write(`${head('/v1/status', announce)}\r\n`);
      // As fast as the socket takes it, up to 1 GiB; stops when the server cuts the connection.
      const pump = (): void => {
        while (sent < GIB && !s.destroyed) {
          sent += chunk.length;
          if (!s.write(frame)) { s.once('drain', pump); return; }
        }
        if (sent >= GIB && !s.destroyed) s.end();
      };
      pump();
    });
    clearInterval(sampler);
    t.match(answerOf(upload.response), { status: 413, code: 'HTTP_BODY_NOT_ALLOWED' }, 'refused with its code');
    t.not(upload.error, 'TEST_BOUND', 'the server cut the upload, not the test');
    t.ok(upload.ms < 2_000, `cut after ${Math.round(upload.ms)} ms`);
    t.ok(sent < SENT_BOUND, `${(sent / 1024 ** 2).toFixed(1)} MiB of the 1,024 MiB were sent before the cut`);
    t.ok(rssPeak - rssBefore < RSS_BOUND, `RSS grew by ${((rssPeak - rssBefore) / 1024 ** 2).toFixed(1)} MiB at most`);
    t.equal((await http('GET', `${url}/v1/status`, undefined, auth)).status, 200, 'the endpoint still answers');
    loop.check(`1 GiB body, ${framing}`);
  });
}

t.test('500 concurrent connections: at most the connection bound are served, the rest refused, and the endpoint recovers', async (t) => {
  const { server, port, url } = await serve(t);
  let dropped = 0;
  server.on('drop', () => { dropped++; });
  const loop = watchLoop(t);
  const sockets: Socket[] = [];
  t.teardown(() => { for (const s of sockets) s.destroy(); });
  const outcomes = await Promise.all(Array.from({ length: 500 }, () => new Promise<'served' | 'refused' | 'unanswered'>((resolve) => {
    const s = connect(port, '127.0.0.1');
    sockets.push(s);
    let data = '';
    const bound = setTimeout(() => { resolve('unanswered'); s.destroy(); }, 15_000);
    s.once('connect', () => s.write('GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n'));
    // A served connection is kept open (keep-alive), holding its place under the bound.
    s.on('data', (c: Buffer) => {
      data += c.toString('latin1');
      if (data.startsWith('HTTP/1.1 200') && data.includes('"ok":true')) { clearTimeout(bound); resolve('served'); }
    });
    s.on('error', () => { /* a refused connection is reset: its outcome is read at close */ });
    s.on('close', () => { clearTimeout(bound); resolve(data.startsWith('HTTP/1.1 200') ? 'served' : 'refused'); });
  })));
  const served = outcomes.filter((o) => o === 'served').length;
  const refused = outcomes.filter((o) => o === 'refused').length;
  t.equal(outcomes.filter((o) => o === 'unanswered').length, 0, 'no connection was left hanging');
  t.ok(served >= 1 && served <= DIAGNOSTICS_MAX_CONNECTIONS, `${served} served, at most the bound (${DIAGNOSTICS_MAX_CONNECTIONS})`);
  t.equal(served + refused, 500);
  t.equal(dropped, refused, `the server refused ${dropped} connections at accept`);
  for (const s of sockets) s.destroy();
  for (let i = 0; i < 50 && (await new Promise<number>((r) => server.getConnections((_e, n) => r(n)))) > 0; i++) await sleep(100);
  t.equal((await http('GET', `${url}/v1/status`, undefined, auth)).status, 200, 'once they are gone, the endpoint answers');
  loop.check('500 connections');
});
