// HTTPS log drains as Logplex delivers to them, against local HTTPS receivers (node's https
// server with a certificate from a throwaway CA): the frames, the headers, batches of about
// 100 KiB, every line once and in order; a 5xx or 429 retried with the same frame id, a 4xx
// dropped; and a stalled receiver that holds its requests: its queue stays bounded, the other
// drain gets everything at once, and once it answers again it is told what it lost (L10), so
// that delivered + dropped is what was sent.
import t, { type Test } from 'tap';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Drain, DRAIN_BATCH_BYTES, DRAIN_QUEUE_BYTES } from '../../../../coordinator/drains/drain.js';
import { HttpsTransport } from '../../../../coordinator/drains/https-transport.js';
import { logplexFrame, readOctetCounted } from '../../../../coordinator/drains/logplex-frame.js';
import { makePki, type Pki } from '../../../helpers/pki.js';
import { eventually } from '../../../helpers/host.js';

interface Received { headers: IncomingMessage['headers']; messages: string[]; bytes: number }

/** An HTTPS receiver; `answer` decides each request's status (undefined: never answer). */
async function receiver(t: Test, pki: Pki, answer: (req: IncomingMessage, n: number) => number | undefined = () => 200) {
  const accepted: Received[] = [];
  const held: ServerResponse[] = [];
  let n = 0;
  const server = createServer({ cert: pki.serverCert, key: pki.serverKey }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const status = answer(req, n++);
      if (status === undefined) return void held.push(res);
      const body = Buffer.concat(chunks);
      if (status >= 200 && status < 300) accepted.push({ headers: req.headers, messages: readOctetCounted(body).messages, bytes: body.length });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => { server.closeAllConnections(); server.close(); });
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}/logs`, accepted, held };
}

const line = (i: number, pad = '') => `2026-12-03T10:00:00.${String(i % 1000).padStart(3, '0')}Z app[web.1]: line ${String(i).padStart(6, '0')}${pad}`;
const numbers = (r: Received[]) => r.flatMap((x) => x.messages).map((m) => /line (\d+)/.exec(m)?.[1]).filter((x) => x !== undefined).map(Number);

t.test('frames, headers and batches as Logplex sends them; every line once, in order', async (t) => {
  const pki = await makePki(t);
  const rx = await receiver(t, pki);
  const url = rx.url.replace('https://', 'https://user:s%40cret@');
  const drain = new Drain({ transport: new HttpsTransport({ url, drainToken: 'd.0b9e1b5a-1234', ca: pki.ca }) });
  t.teardown(() => drain.close());
  const total = 5000;
  for (let i = 0; i < total; i++) drain.push(logplexFrame(line(i, ' '.padEnd(60, 'x'))));
  await eventually('every line at the receiver', () => (numbers(rx.accepted).length >= total ? true : undefined), 20_000);
  t.same(numbers(rx.accepted), Array.from({ length: total }, (_, i) => i), 'every line once, in order');
  const first = rx.accepted[0]!;
  t.equal(first.headers['content-type'], 'application/logplex-1');
  t.equal(first.headers['logplex-drain-token'], 'd.0b9e1b5a-1234');
  t.equal(first.headers.authorization, `Basic ${Buffer.from('user:s@cret').toString('base64')}`, "the URL's user and password as Basic authorization");
  t.ok(rx.accepted.every((r) => Number(r.headers['logplex-msg-count']) === r.messages.length), 'Logplex-Msg-Count is the number of frames in each body');
  t.equal(new Set(rx.accepted.map((r) => r.headers['logplex-frame-id'])).size, rx.accepted.length, 'each batch its own frame id');
  t.ok(rx.accepted.length > 1 && rx.accepted.every((r) => r.bytes <= DRAIN_BATCH_BYTES), `${rx.accepted.length} batches, none over ${DRAIN_BATCH_BYTES} bytes`);
  // The first batch goes out at once; what arrives while a request is in flight makes the next.
  t.ok(rx.accepted.slice(1, -1).every((r) => r.bytes > DRAIN_BATCH_BYTES * 0.9), 'the batches between the first and the last close to it');
  t.match(first.messages[0], /^<190>1 2026-12-03T10:00:00\.000Z host app web\.1 - line 000000 /, 'an RFC 5424 frame with Logplex\'s fields');
  await eventually('the last answer at the drain', () => (drain.stats().deliveredFrames === total ? true : undefined), 5_000);
  t.match(drain.stats(), { deliveredFrames: total, droppedFrames: 0, rejectedFrames: 0, queuedFrames: 0 }, 'the drain counts them delivered');
});

t.test('a 5xx or 429 is retried with the same frame id; another 4xx is dropped, not retried', async (t) => {
  const pki = await makePki(t);
  const seen: string[] = [];
  // Each batch: 503 the first time, 429 the second, 200 the third; batch 3 is answered 400.
  const rx = await receiver(t, pki, (req) => {
    const id = String(req.headers['logplex-frame-id']);
    seen.push(id);
    const tries = seen.filter((x) => x === id).length;
    const batchNo = new Set(seen).size;
    if (batchNo === 3) return 400;
    return tries === 1 ? 503 : tries === 2 ? 429 : 200;
  });
  const drain = new Drain({ transport: new HttpsTransport({ url: rx.url, drainToken: 'd.1', ca: pki.ca }), batchBytes: 2_000, backoff: { baseMs: 20, capMs: 100 }, jitter: 0 });
  t.teardown(() => drain.close());
  const frames = Array.from({ length: 40 }, (_, i) => logplexFrame(line(i, 'y'.repeat(150))));
  for (const f of frames) drain.push(f);
  await eventually('the queue to empty', () => (drain.stats().queuedFrames === 0 && drain.stats().deliveredFrames + drain.stats().rejectedFrames === 40 ? true : undefined), 20_000);
  const ids = [...new Set(seen)];
  t.ok(ids.length >= 4, `${ids.length} batches`);
  t.same(seen.slice(0, 3), [ids[0], ids[0], ids[0]], 'the first batch was sent three times with one frame id (503, 429, then 200)');
  t.equal(seen.filter((x) => x === ids[2]).length, 1, 'the batch answered 400 was sent once');
  const rejected = drain.stats().rejectedFrames;
  t.ok(rejected > 0, `and its ${rejected} frames dropped`);
  const got = numbers(rx.accepted);
  t.equal(got.length + rejected, 40, 'the rest delivered');
  t.same(got, [...got].sort((a, b) => a - b), 'in order');
  t.equal(new Set(got).size, got.length, 'each once');
  t.ok(drain.stats().retries >= 2 * (ids.length - 1), `retries counted (${drain.stats().retries})`);
});

t.test('a stalled drain stays bounded and blocks no other; once back it is told what it lost', async (t) => {
  const pki = await makePki(t);
  let stalled = true;
  const slow = await receiver(t, pki, () => (stalled ? undefined : 200));
  const fast = await receiver(t, pki);
  const a = new Drain({ transport: new HttpsTransport({ url: slow.url, drainToken: 'd.a', ca: pki.ca, timeoutMs: 1_000 }), backoff: { baseMs: 50, capMs: 200 }, jitter: 0 });
  const b = new Drain({ transport: new HttpsTransport({ url: fast.url, drainToken: 'd.b', ca: pki.ca }) });
  t.teardown(() => { a.close(); b.close(); });
  const total = 20_000;
  const pad = ' '.padEnd(1000, 'z');
  let most = 0;
  for (let i = 0; i < total; i++) {
    const f = logplexFrame(line(i, pad));
    a.push(f);
    b.push(f);
    if (i % 100 === 0) {
      most = Math.max(most, a.stats().queuedBytes);
      // The app writes no faster than a healthy drain takes its lines (else that one would
      // drop too): the stalled drain must not slow it down.
      while (b.stats().queuedBytes > DRAIN_QUEUE_BYTES / 2) await new Promise((r) => setTimeout(r, 2));
    }
  }
  await eventually('the fast drain to get everything', () => (numbers(fast.accepted).length >= total ? true : undefined), 30_000);
  t.same(numbers(fast.accepted), Array.from({ length: total }, (_, i) => i), 'the other drain got every line, in order');
  t.ok(most <= DRAIN_QUEUE_BYTES + DRAIN_BATCH_BYTES + 2048, `the stalled drain held at most ${most} bytes (queue bound ${DRAIN_QUEUE_BYTES} + one batch)`);
  const dropped = a.stats().droppedFrames;
  t.ok(dropped > total / 2, `it dropped the oldest (${dropped})`);
  stalled = false;
  for (const res of slow.held.splice(0)) res.destroy();
  await eventually('the stalled drain to catch up', () => (a.stats().queuedFrames === 0 ? true : undefined), 30_000);
  const messages = slow.accepted.flatMap((r) => r.messages);
  const notice = messages.find((m) => m.includes('Error L10'));
  t.match(notice, /^<45>1 \S+ host slipway logplex - Error L10 \(output buffer overflow\): \d+ messages dropped since \S+\.$/, 'Logplex\'s L10 notice, in the stream');
  const told = Number(/: (\d+) messages dropped/.exec(notice ?? '')?.[1]);
  const delivered = numbers(slow.accepted);
  t.equal(new Set(delivered).size, delivered.length, 'no line twice');
  t.equal(told, dropped, 'the notice counts every dropped line');
  t.equal(delivered.length + dropped, total, `delivered ${delivered.length} + dropped ${dropped} is what was sent`);
  t.equal(delivered.at(-1), total - 1, 'the newest lines were kept');
});
