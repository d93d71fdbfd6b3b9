import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { duplexPair } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { guardLink, LINK_WS_LIMITS, MAX_FRAGMENTS, MessageBudget, WS_TOO_MANY_PARTS, type GuardViolation } from '../../../shared/link-guard.js';

t.test('the message budget allows a burst, then the refill rate, and refuses a flood', async (t) => {
  let now = 0;
  const budget = new MessageBudget(100, 10, () => now);
  let taken = 0;
  while (budget.take()) taken++;
  t.equal(taken, 10, 'the burst');
  now += 50; // 50 ms at 100 a second: 5 more
  taken = 0;
  while (budget.take()) taken++;
  t.equal(taken, 5);
  now += 60_000;
  taken = 0;
  while (budget.take()) taken++;
  t.equal(taken, 10, 'an idle minute refills to the burst, not beyond');
});

/** One masked client frame of a one-byte payload ('x'): FIN clear unless `fin`. */
const frame = (opcode: number, fin: boolean) => Buffer.from([(fin ? 0x80 : 0) | opcode, 0x81, 0, 0, 0, 0, 0x78]);

/** A ws server socket (LINK_WS_LIMITS, as both sides open theirs) over an in-memory stream
 * pair, through ws's public handleUpgrade, with the guard on it; `peer` is the raw other end. */
async function guardedPair(t: Test) {
  const [local, peer] = duplexPair();
  const wss = new WebSocketServer({ noServer: true, ...LINK_WS_LIMITS, perMessageDeflate: false });
  const req = {
    method: 'GET', url: '/v1/agent',
    headers: { host: 'coordinator', upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-version': '13', 'sec-websocket-key': randomBytes(16).toString('base64') },
  } as unknown as IncomingMessage;
  const opened = new Promise<WebSocket>((resolve) => wss.handleUpgrade(req, local, Buffer.alloc(0), resolve));
  const fromServer: Buffer[] = [];
  peer.on('data', (c: Buffer) => fromServer.push(c));
  const ws = await opened;
  const violations: GuardViolation[] = [];
  const errors: (Error & { code?: string })[] = [];
  ws.on('error', (err) => errors.push(err));
  const messages: string[] = [];
  const guard = guardLink(ws, local as unknown as Socket, (kind) => violations.push(kind));
  ws.on('message', (data) => { if (guard.admit()) messages.push((data as Buffer).toString('utf8')); });
  // Not events.once: it rejects on the 'error' event this test provokes.
  const closed = new Promise((resolve) => ws.once('close', resolve));
  t.teardown(async () => {
    peer.destroy();
    local.destroy();
    await closed;
    wss.close();
  });
  /** Bytes after the 101 response. */
  const frames = () => {
    const all = Buffer.concat(fromServer);
    return all.subarray(all.indexOf('\r\n\r\n') + 4);
  };
  return { ws, peer, violations, errors, messages, frames };
}

const settle = () => new Promise((r) => setImmediate(r));

t.test("ws's maxFragments (the public option): MAX_FRAGMENTS fragments make a message, one more closes 1008", async (t) => {
  const { ws, peer, violations, errors, messages, frames } = await guardedPair(t);
  peer.write(frame(0x1, false));
  for (let n = 1; n < MAX_FRAGMENTS - 1; n++) peer.write(frame(0x0, false));
  peer.write(frame(0x0, true));
  await settle();
  t.same(messages, ['x'.repeat(MAX_FRAGMENTS)], `a message in exactly ${MAX_FRAGMENTS} fragments is accepted`);
  t.same(violations, []);

  peer.write(frame(0x1, false));
  for (let n = 1; n <= MAX_FRAGMENTS; n++) peer.write(frame(0x0, false));
  await settle();
  t.match(errors, [{ code: WS_TOO_MANY_PARTS }], `ws refuses fragment ${MAX_FRAGMENTS + 1}`);
  t.same(frames().subarray(0, 4), Buffer.from([0x88, 0x02, 0x03, 0xf0]), 'and sends a close frame: 1008, no reason');
  t.equal(ws.readyState, ws.CLOSING);
  t.same(violations, ['fragment_flood'], 'the guard reports it once, as a fragment flood');
  t.same(messages, ['x'.repeat(MAX_FRAGMENTS)], 'the flooded message was never delivered');
});

t.test('other ws errors are not counted as floods', async (t) => {
  const { violations, errors, peer } = await guardedPair(t);
  peer.write(Buffer.from([0x83, 0x81, 0, 0, 0, 0, 0x78])); // opcode 3 is reserved
  await settle();
  t.match(errors, [{ code: 'WS_ERR_INVALID_OPCODE' }]);
  t.same(violations, []);
});
