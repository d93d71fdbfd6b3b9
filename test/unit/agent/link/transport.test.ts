// Transport helpers without a socket (agent/link/transport.ts): which URLs the link dials, and
// the error code of a refused upgrade's body, read with a bound in bytes and time. The body is
// a stream standing in for the refused response; the time bound runs on node:test's mock timers.
import t from 'tap';
import { mock } from 'node:test';
import { PassThrough } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import { dialUrls, readRefusalCode, REFUSAL_BODY_BYTES, REFUSAL_READ_MS } from '../../../../agent/link/transport.js';

function refusal(): { res: PassThrough & IncomingMessage; codes: (string | undefined)[] } {
  const codes: (string | undefined)[] = [];
  const res = new PassThrough() as PassThrough & IncomingMessage;
  readRefusalCode(res, (code) => codes.push(code));
  return { res, codes };
}

const ended = (res: PassThrough) => new Promise((r) => setImmediate(r)).then(() => res.readableEnded || res.destroyed);

t.test('dialUrls: the list wins, else the one url; none is a programming error', async (t) => {
  t.same(dialUrls({ token: 'x', url: 'ws://a/v1/agent' }), ['ws://a/v1/agent']);
  t.same(dialUrls({ token: 'x', url: 'ws://a/v1/agent', urls: ['ws://b/v1/agent', 'ws://c/v1/agent'] }), ['ws://b/v1/agent', 'ws://c/v1/agent']);
  t.throws(() => dialUrls({ token: 'x' }), /at least one URL/);
  t.throws(() => dialUrls({ token: 'x', urls: [] }), /at least one URL/);
});

t.test("the coordinator's JSON error: its code, once", async (t) => {
  const { res, codes } = refusal();
  res.write('{"error":{"code":"COORDINATOR_');
  res.end('NOT_LEADER","message":"a follower"}}');
  await ended(res);
  t.same(codes, ['COORDINATOR_NOT_LEADER']);
  res.emit('close');
  t.same(codes, ['COORDINATOR_NOT_LEADER'], 'called once whatever the stream does after');
});

t.test('a body that is not the JSON error has no code', async (t) => {
  for (const body of ['<html>502 Bad Gateway</html>', '', '{"error":{"code":42}}', '{"error":{"code":"lower case"}}', `{"error":{"code":"${'A'.repeat(65)}"}}`, 'null']) {
    const { res, codes } = refusal();
    res.end(body);
    await ended(res);
    t.same(codes, [undefined], JSON.stringify(body.slice(0, 30)));
  }
});

t.test('a body over the byte bound is not read on', async (t) => {
  const { res, codes } = refusal();
  res.write(Buffer.alloc(REFUSAL_BODY_BYTES + 1, 'x'));
  await new Promise((r) => setImmediate(r));
  t.same(codes, [undefined], 'given up at the bound, before the body ended');
  res.write('more');
  res.end();
  t.same(codes, [undefined]);
});

t.test('a body that never ends is given up after REFUSAL_READ_MS', async (t) => {
  mock.timers.enable({ apis: ['setTimeout'] });
  t.teardown(() => mock.timers.reset());
  const { res, codes } = refusal();
  res.write('{"error":{"code":"COORDINATOR_NOT_LEADER"');
  await new Promise((r) => process.nextTick(r));
  mock.timers.tick(REFUSAL_READ_MS - 1);
  t.same(codes, [], 'still reading');
  mock.timers.tick(1);
  t.same(codes, [undefined], 'an unfinished body has no code');
});
