// Logplex's frames: the fields of a shipped line where Logplex puts them, the octet count in
// bytes (UTF-8), the L10 notice, and reading a counted stream back whole or in pieces.
import t from 'tap';
import { logplexFrame, octetCounted, overflowFrame, readOctetCounted } from '../../../../coordinator/drains/logplex-frame.js';

t.test('a shipped line as a Logplex frame', async (t) => {
  t.equal(logplexFrame('2026-12-03T10:00:00.000Z app[web.1]: GET / 200'), '58 <190>1 2026-12-03T10:00:00.000Z host app web.1 - GET / 200');
  t.equal(logplexFrame('2026-12-03T10:00:00.000Z slipway[worker.2]: State changed from starting to up'), '88 <45>1 2026-12-03T10:00:00.000Z host slipway worker.2 - State changed from starting to up');
  t.equal(logplexFrame('no shipped form', () => new Date('2026-12-03T10:00:00.000Z')), '60 <190>1 2026-12-03T10:00:00.000Z host app - - no shipped form', 'another line goes out whole');
  const utf8 = logplexFrame('2026-12-03T10:00:00.000Z app[web.1]: é€');
  t.equal(Number(utf8.split(' ')[0]), Buffer.byteLength(utf8.slice(utf8.indexOf(' ') + 1)), 'the count is in bytes, not characters');
});

t.test("the drain's own L10 notice", async (t) => {
  t.equal(overflowFrame(42, new Date('2026-12-03T09:59:00.000Z'), new Date('2026-12-03T10:00:00.000Z')),
    octetCounted('<45>1 2026-12-03T10:00:00.000Z host slipway logplex - Error L10 (output buffer overflow): 42 messages dropped since 2026-12-03T09:59:00.000Z.'));
});

t.test('an octet-counted stream read back, whole or in pieces', async (t) => {
  const frames = ['a b', 'é', '', 'with\nnewline'].map(octetCounted);
  const all = Buffer.from(frames.join(''));
  t.same(readOctetCounted(all), { messages: ['a b', 'é', '', 'with\nnewline'], rest: Buffer.alloc(0) });
  const cut = readOctetCounted(all.subarray(0, 8));
  t.same(cut.messages, ['a b'], 'what is whole');
  t.same(cut.rest.toString(), all.subarray(5, 8).toString(), 'the rest kept for the next read');
  t.throws(() => readOctetCounted(Buffer.from('x3 abc')), /octet count/);
});
