// The real agent session against a hostile coordinator (a real ws server): an oversize frame
// (1009), a message in a flood of fragments (1008), 10,000 commands a second (1008) and
// garbage frames (answered with error codes, link kept). After every close the agent redials.
import t from 'tap';
import { MAX_FRAME_BYTES } from '../../../../shared/protocol.js';
import { MAX_FRAGMENTS, MESSAGE_BURST } from '../../../../shared/link-guard.js';
import { playCoordinator, startSession, until } from './fixtures/link.js';

const startDyno = (i: number) => JSON.stringify({ type: 'stop_dyno', id: `cmd-${i}`, dynoId: `d-${i % 100}` });

t.test('a frame over the limit closes the link with 1009 and the agent redials', async (t) => {
  const c = await playCoordinator(t, (link, i) => { if (i === 0) link.ws.send('x'.repeat(MAX_FRAME_BYTES + 1)); });
  const { session } = startSession(t, c.url);
  const first = await until('the first link', () => c.links[0]);
  t.equal((await first.closed).code, 1009, 'closed as message too big');
  await until('the agent to redial and be welcomed', () => c.links.length >= 2 && session.status().state === 'ready');
  t.pass('ready again on a new link');
});

t.test('a message in a flood of fragments closes the link with 1008 before it is assembled', async (t) => {
  const c = await playCoordinator(t, (link, i) => {
    if (i !== 0) return;
    for (let n = 0; n < MAX_FRAGMENTS * 20; n++) link.ws.send('x', { fin: false });
  });
  const { session } = startSession(t, c.url);
  const first = await until('the first link', () => c.links[0]);
  // ws's maxFragments closes by itself, with 1008 and no reason (its receiver's
  // WS_ERR_TOO_MANY_BUFFERED_PARTS); the agent names it fragment_flood in its own status.
  t.same(await first.closed, { code: 1008, reason: '' }, "closed by ws's fragment bound");
  await until('ready on a new link', () => c.links.length >= 2 && session.status().state === 'ready');
  t.equal(session.status().policyCloses, 1, 'counted');
  t.match(session.status().lastError ?? '', /fragment_flood/, 'reported as a fragment flood');
});

t.test('10,000 commands a second: the agent handles its budget, closes with 1008, redials; memory stays bounded', async (t) => {
  const heapBefore = process.memoryUsage().heapUsed;
  const c = await playCoordinator(t, async (link, i) => {
    if (i !== 0) return;
    // 10 bursts of 1,000, 100 ms apart: 10,000 in a second.
    for (let burst = 0; burst < 10 && link.ws.readyState === link.ws.OPEN; burst++) {
      for (let n = 0; n < 1000; n++) link.ws.send(startDyno(burst * 1000 + n));
      await new Promise((r) => setTimeout(r, 100));
    }
  });
  const { session, counts } = startSession(t, c.url);
  const first = await until('the first link', () => c.links[0]);
  t.match(await first.closed, { code: 1008, reason: 'message_flood' });
  const handled = counts.stop_dyno ?? 0;
  t.ok(handled >= MESSAGE_BURST && handled < 10_000, `the agent handled ${handled} commands (its burst of ${MESSAGE_BURST} and the refill), not all 10,000`);
  await until('ready on a new link', () => c.links.length >= 2 && session.status().state === 'ready');
  const grown = process.memoryUsage().heapUsed - heapBefore;
  t.ok(grown < 64 * 1024 * 1024, `heap grew ${(grown / 1048576).toFixed(1)} MB`);
});

t.test('invalid JSON, unknown types and schema violations are answered with codes; the link stays', async (t) => {
  const c = await playCoordinator(t, (link, i) => {
    if (i !== 0) return;
    link.ws.send('{not json');
    link.ws.send(JSON.stringify({ type: 'reboot_host', id: 'x' }));
    link.ws.send(JSON.stringify({ type: 'stop_dyno', id: 'cmd-1', dynoId: 'NOT A DYNO ID' }));
    link.ws.send(Buffer.from([1, 2, 3]), { binary: true });
  });
  const { session } = startSession(t, c.url);
  const link = await until('the first link', () => c.links[0]);
  const errors = await until('four error answers', () => {
    const e = link.messages.filter((m) => m.type === 'error');
    return e.length >= 4 ? e : undefined;
  });
  t.same(errors.map((e) => (e as { code: string }).code), ['PROTOCOL_INVALID_JSON', 'PROTOCOL_UNKNOWN_TYPE', 'PROTOCOL_SCHEMA_VIOLATION', 'PROTOCOL_SCHEMA_VIOLATION']);
  t.equal(session.status().invalidMessages, 4, 'counted');
  t.equal(c.links.length, 1, 'no reconnect: the link survived');
  t.equal(session.status().state, 'ready');
});
