// The attach hook between a dyno's streams and the rendezvous: the dyno owner over the fake
// driver (its streams are PassThroughs the test writes as the dyno), a real Rendezvous on a
// loopback HTTP server, the agent's real dialer, and the CLI's real session (cli/attach-session.ts)
// on the other leg. Output goes out by channel, stdin and its end come in, the exit status
// ends the session as the CLI's result, resize and stop reach the dyno, and a CLI leg that goes
// away stops the dyno (SIGTERM, then SIGKILL after the grace). Real runtimes and processes:
// test/integration/e2e/attached-run.test.ts.
import t, { type Test } from 'tap';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { EventEmitter } from 'node:events';
import { WebSocket } from 'ws';
import { Rendezvous } from '../../../../shared/coordinator-sdk/rendezvous.js';
import { RENDEZVOUS_PATH } from '../../../../shared/attach.js';
import { rendezvousDialer } from '../../../../agent/link/rendezvous-dial.js';
import { ONE_OFF_STOP_GRACE_MS } from '../../../../agent/dynos/attach-hook.js';
import { attachSession, exitCodeOf } from '../../../../cli/attach-session.js';
import { dynoSetup, dynoSpec } from '../../../helpers/fake-dyno.js';
import { quietLogger } from '../../../helpers/host.js';

async function relay(t: Test): Promise<{ rv: Rendezvous; base: string }> {
  const rv = new Rendezvous({ log: quietLogger() });
  const server = createServer((_req, res) => { res.writeHead(404).end(); });
  server.on('upgrade', (req, socket, head) => { if (!rv.handleUpgrade(req, socket, head)) socket.destroy(); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => { rv.close(); server.closeAllConnections(); server.close(); });
  return { rv, base: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/v1/agent` };
}

async function attachedDyno(t: Test, tty = false) {
  const { rv, base } = await relay(t);
  const ticket = rv.open('app1 run.1');
  const setup = dynoSetup(t);
  const spec = dynoSpec({ id: 'app1-run-1-abc', type: 'run', name: 'run.1', attach: { session: ticket.id, secret: ticket.agentSecret, tty, ...(tty ? { cols: 80, rows: 24 } : {}) } });
  const dyno = setup.make(spec, { attach: rendezvousDialer({ currentUrl: () => base }) });
  dyno.begin();
  await setup.until('up');
  t.ok(setup.driver.started[0]?.stdio, 'the container was started with its stdio for the agent');
  const io = setup.driver.attached.get(spec.id)!;
  return { ...setup, rv, ticket, spec, io, cliUrl: base.replace('/v1/agent', RENDEZVOUS_PATH + ticket.id) };
}

function cli(url: string, secret: string, tty = false) {
  const stdin = new PassThrough();
  const stdout = Object.assign(new PassThrough(), { columns: 120, rows: 40 });
  const stderr = new PassThrough();
  const signals = new EventEmitter();
  let out = '';
  let err = '';
  stdout.on('data', (b: Buffer) => { out += b.toString('utf8'); });
  stderr.on('data', (b: Buffer) => { err += b.toString('utf8'); });
  const done = attachSession({ url, secret, tty, stdin, stdout, stderr, signals });
  return { stdin, signals, done, out: () => out, err: () => err };
}

const until = async (what: string, ok: () => boolean, ms = 5_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`never: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

t.test('output by channel, stdin and its end, and the exit status as the CLI\'s result', async (t) => {
  const d = await attachedDyno(t);
  const c = cli(d.cliUrl, d.ticket.cliSecret);
  d.io.stdout.write('early output waits for the CLI\n');
  c.stdin.write('typed\n');
  c.stdin.end();
  await until('stdin to reach the dyno and end', () => d.io.stdinEnded);
  t.equal(Buffer.concat(d.io.stdinReceived).toString(), 'typed\n', 'the CLI\'s stdin is the dyno\'s');
  d.io.stderr.write('to stderr\n');
  d.io.stdout.write('last words\n');
  d.driver.exit(d.spec.id, { code: 3, signal: null, oomKilled: false });
  const exit = await c.done;
  t.same(exit, { code: 3, signal: null, oomKilled: false }, 'the exit status came after the output');
  t.equal(exitCodeOf(exit), 3);
  t.equal(c.out(), 'early output waits for the CLI\nlast words\n', 'stdout, in order, nothing lost before the CLI came');
  t.equal(c.err(), 'to stderr\n', 'stderr on its own channel');
  t.same(d.driver.signals, [], 'a dyno that ended on its own got no signal');
});

t.test('Ctrl-C without a terminal: stop is SIGTERM to the dyno; a terminal\'s size goes along', async (t) => {
  const d = await attachedDyno(t, true);
  const c = cli(d.cliUrl, d.ticket.cliSecret, true);
  await until('the initial size', () => d.io.resizes.length > 0);
  t.same(d.io.resizes[0], { cols: 120, rows: 40 }, 'the terminal\'s size at the start');
  c.signals.emit('SIGWINCH');
  await until('the second size', () => d.io.resizes.length > 1);
  c.done.catch(() => undefined);

  const plain = await attachedDyno(t);
  const p = cli(plain.cliUrl, plain.ticket.cliSecret);
  await until('the leg to be up', () => plain.rv.stats().sessions === 1 && plain.io.stdout.listenerCount('data') > 0);
  await new Promise((r) => setTimeout(r, 50));
  p.signals.emit('SIGINT');
  await until('SIGTERM', () => plain.driver.signals.includes('SIGTERM'));
  const exit = await p.done;
  t.same(exit, { code: 143, signal: 'SIGTERM', oomKilled: false }, 'the CLI hears how the dyno ended');
});

t.test('a CLI leg that goes away stops the dyno: SIGTERM, then SIGKILL after the grace', async (t) => {
  const d = await attachedDyno(t);
  d.driver.ignoreTerm = true;
  const leg = new WebSocket(d.cliUrl, { headers: { authorization: `Bearer ${d.ticket.cliSecret}` } });
  await new Promise((r) => leg.once('open', r));
  await until('the agent leg', () => d.io.stdout.listenerCount('data') > 0);
  leg.terminate();
  await until('SIGTERM', () => d.driver.signals.includes('SIGTERM'));
  t.notOk(d.driver.signals.includes('SIGKILL'), 'not killed before the grace');
  await d.clock.next((ms) => ms === ONE_OFF_STOP_GRACE_MS);
  d.clock.tick(ONE_OFF_STOP_GRACE_MS);
  await until('SIGKILL', () => d.driver.signals.includes('SIGKILL'));
  await d.until('crashed');
  t.pass('the dyno ended, reported crashed (a one-off is not restarted)');
});
