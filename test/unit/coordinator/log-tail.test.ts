// A tail session over a sink that pushes back like a socket: lines queue while it does, the
// oldest are dropped past the byte bound, and the reader is told how many once it catches up
// (Logplex's L11). Nothing is lost without being counted.
import t from 'tap';
import { EventEmitter } from 'node:events';
import { lineMatches, LogTail } from '../../../coordinator/log-tail.js';

/** A sink that accepts `room` writes, then pushes back until drain(). */
class Sink extends EventEmitter {
  written: string[] = [];
  room = Infinity;
  write(chunk: string): boolean {
    this.written.push(chunk);
    return --this.room > 0;
  }
  drain(room = Infinity): void {
    this.room = room;
    this.emit('drain');
  }
}

t.test('a fast reader gets every line at once, in order', async (t) => {
  const sink = new Sink();
  const tail = new LogTail(sink);
  for (let i = 0; i < 5; i++) tail.push(`line ${i}`);
  t.same(sink.written, ['line 0\n', 'line 1\n', 'line 2\n', 'line 3\n', 'line 4\n']);
  t.equal(tail.bufferedBytes, 0, 'nothing held');
});

t.test('a slow reader: bounded queue, oldest dropped and counted, then told (L11)', async (t) => {
  const sink = new Sink();
  sink.room = 1;
  const at = new Date('2026-12-03T10:00:00.000Z');
  const tail = new LogTail(sink, 100, () => at);
  tail.push('first');
  t.same(sink.written, ['first\n'], 'the first write fills the socket');
  // 20 lines of 10 bytes (9 + newline) while blocked: only 10 fit the 100-byte bound.
  for (let i = 0; i < 20; i++) tail.push(`queued-${String(i).padStart(2, '0')}`);
  t.ok(tail.bufferedBytes <= 100, `held ${tail.bufferedBytes} bytes, the bound is 100`);
  t.equal(tail.pendingDrops, 10, 'the 10 oldest were dropped');
  t.equal(tail.droppedTotal, 10);
  sink.drain();
  const after = sink.written.slice(1);
  t.equal(after[0], '2026-12-03T10:00:00.000Z slipway[logplex]: Error L11 (Tail buffer overflow): 10 messages dropped since 2026-12-03T10:00:00.000Z.\n', 'the reader is told first');
  t.same(after.slice(1), Array.from({ length: 10 }, (_, i) => `queued-${String(i + 10).padStart(2, '0')}\n`), 'then the newest 10, in order');
  t.equal(tail.pendingDrops, 0);
  t.equal(tail.bufferedBytes, 0);
  tail.push('live');
  t.equal(sink.written.at(-1), 'live\n', 'and it writes straight through again');
});

t.test('a reader that blocks again while catching up keeps the rest queued', async (t) => {
  const sink = new Sink();
  sink.room = 1;
  const tail = new LogTail(sink, 1000);
  tail.push('a');
  for (const l of ['b', 'c', 'd']) tail.push(l);
  sink.drain(2);
  t.same(sink.written, ['a\n', 'b\n', 'c\n'], 'two more fit, then it pushed back');
  t.ok(tail.bufferedBytes > 0, 'd is still held');
  sink.drain();
  t.same(sink.written, ['a\n', 'b\n', 'c\n', 'd\n'], 'and comes once the socket drains');
});

t.test('filters by dyno name, process type and source', async (t) => {
  const app = '2026-12-03T10:00:00.000Z app[web.1]: GET /';
  const agent = '2026-12-03T10:00:00.000Z slipway[web.12]: State changed from starting to up';
  const worker = '2026-12-03T10:00:00.000Z app[worker.1]: job done';
  t.ok(lineMatches(app, {}));
  t.ok(lineMatches(app, { dyno: 'web.1' }));
  t.notOk(lineMatches(agent, { dyno: 'web.1' }), 'web.12 is not web.1');
  t.ok(lineMatches(agent, { dyno: 'web' }), 'a process type takes all of its dynos');
  t.notOk(lineMatches(worker, { dyno: 'web' }));
  t.ok(lineMatches(agent, { source: 'slipway' }));
  t.notOk(lineMatches(agent, { source: 'app' }));
  t.ok(lineMatches(app, { source: 'app', dyno: 'web' }));
  t.notOk(lineMatches('not a shipped line', { source: 'app' }), 'a line of another form passes no filter');
});
