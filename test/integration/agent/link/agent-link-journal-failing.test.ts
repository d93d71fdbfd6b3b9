// The link's owner (agent/link/agent-link.ts) with a journal that fails on purpose, over a real
// DynoManager (fake driver) and a real ws server playing the coordinator: a dyno that crashes
// is restarted while every journal write fails, its events reach the coordinator (at once over
// a ready link, or resent once the link comes up), and once the disk works again the journal
// holds every unacked event, so an agent restart would resend them.
import t from 'tap';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import { AgentLink } from '../../../../agent/link/agent-link.js';
import { EventJournal } from '../../../../agent/link/event-journal.js';
import { AGENT_WS_PATH, PROTOCOL_VERSION, type AgentMessage, type DynoStateEvent, type Event, type Hello } from '../../../../shared/protocol.js';
import { FailingJournalFiles } from '../../../helpers/failing-journal-files.js';
import { managerSetup, spec } from '../../../helpers/fake-manager.js';
import { quietLogger, tempDir } from '../../../helpers/host.js';
import { CAPACITY, TOKEN, until } from './fixtures/link.js';

/** A coordinator that refuses upgrades (503) until `accepting`, welcomes with ackSeq 0 and
 * records what it is sent. */
async function coordinator(t: { teardown(fn: () => unknown): void }) {
  const server = createServer();
  const state = { accepting: false, messages: [] as AgentMessage[], ws: undefined as WebSocket | undefined };
  const wss = new WebSocketServer({ server, path: AGENT_WS_PATH, verifyClient: (_info, cb) => cb(state.accepting, 503) });
  wss.on('connection', (ws) => {
    state.ws = ws;
    ws.on('message', (data) => {
      const m = JSON.parse((data as Buffer).toString('utf8')) as AgentMessage;
      state.messages.push(m);
      if (m.type === 'hello') ws.send(JSON.stringify({ type: 'welcome', protocol: PROTOCOL_VERSION, coordinatorId: 'journal-test', ackSeq: 0 }));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(async () => {
    for (const c of wss.clients) c.terminate();
    await new Promise((r) => wss.close(r));
    await new Promise((r) => server.close(r));
  });
  const events = () => state.messages.filter((m): m is Event => m.type === 'event');
  const ack = (seq: number) => state.ws!.send(JSON.stringify({ type: 'ack', seq }));
  return { url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}${AGENT_WS_PATH}`, state, events, ack };
}

async function setup(t: { teardown(fn: () => unknown): void }) {
  const m = managerSetup(t);
  const c = await coordinator(t);
  const file = join(await tempDir(t), 'agent', 'events.jsonl');
  const files = new FailingJournalFiles();
  const link = new AgentLink({
    dial: { url: c.url, token: TOKEN }, journalFile: file, journalFiles: files,
    identity: { id: 'agent-journal', hostname: 'agent-journal.internal', address: '127.0.0.1', version: 'test', runtime: 'runc' },
    capacity: async () => CAPACITY, manager: m.manager, slugs: { has: () => true, ensure: async () => undefined },
    log: quietLogger(), session: { reconnectInitialMs: 50 },
  });
  t.teardown(async () => {
    await m.manager.stopAll(100);
    await link.close();
  });
  m.manager.onTransition(link.transition);
  const crashAndRestart = async (id: string) => {
    const ups = m.events.filter((e) => e.id === id && e.state === 'up').length;
    m.driver.exit(id, { code: 1, signal: null, oomKilled: false });
    await until(`${id} restarted`, () => m.events.filter((e) => e.id === id && e.state === 'up').length > ups || undefined);
  };
  const states = (evs: readonly Event[]) => evs.map((e) => `${e.seq}:${(e.event as DynoStateEvent).dyno.state}`);
  return { ...m, c, file, files, link, crashAndRestart, states };
}

const CRASH_SEQUENCE = ['1:starting', '2:up', '3:crashed', '4:starting', '5:up'];

t.test('link down, every journal write failing: the crashed dyno is restarted and its events resent when the link comes up', async (t) => {
  const s = await setup(t);
  s.files.failAll('ENOSPC');
  s.link.start();
  s.manager.start(spec(1));
  await s.until('app-worker-1', 'up');
  await s.crashAndRestart('app-worker-1');
  t.equal(s.link.status().state === 'ready', false, 'the coordinator refused every dial meanwhile');
  await until('the journal failure to show', () => s.link.status().journal?.ok === false || undefined);
  t.match(s.link.status().journal!.lastError, /ENOSPC/);
  t.equal(s.link.status().journal!.unwritten, 5);

  s.c.state.accepting = true;
  await until('the resent events', () => s.c.events().length >= 5 || undefined, 10_000);
  t.same(s.states(s.c.events()), CRASH_SEQUENCE, 'every event, once, in order, though none was ever on disk');
  const hello = s.c.state.messages[0] as Hello;
  t.equal(hello.type, 'hello');

  s.files.failAll(undefined);
  await until('the journal to recover', () => s.link.status().journal?.ok || undefined, 35_000);
  const disk = EventJournal.load(s.file).state;
  t.equal(disk.epoch, hello.seqEpoch, 'the file carries the numbering the coordinator was told');
  t.same(s.states(disk.pending), CRASH_SEQUENCE, 'unacked, so an agent restart would resend them');

  s.c.ack(5);
  await until('the ack to reach the file', () => EventJournal.load(s.file).state.pending.length === 0 || undefined);
  t.equal(EventJournal.load(s.file).state.lastSeq, 5);
});

t.test('link ready, journal failing: events go out at once, acks work, the file catches up on recovery', async (t) => {
  const s = await setup(t);
  s.c.state.accepting = true;
  s.files.failAll('EIO');
  s.link.start();
  await until('the link', () => s.link.status().state === 'ready' || undefined);
  s.manager.start(spec(2));
  await until('starting and up delivered', () => s.c.events().length >= 2 || undefined);
  s.c.ack(2);
  await until('the ack', () => s.link.status().unackedEvents === 0 || undefined);
  await s.crashAndRestart('app-worker-2');
  await until('the crash delivered', () => s.c.events().length >= 5 || undefined);
  t.same(s.states(s.c.events()), CRASH_SEQUENCE);
  t.equal(s.link.status().journal!.ok, false, 'the disk is still failing');
  t.equal(s.link.status().journal!.unwritten, 3, 'the events after the ack');

  s.files.failAll(undefined);
  await until('the journal to recover', () => s.link.status().journal?.ok || undefined, 35_000);
  const disk = EventJournal.load(s.file).state;
  t.same(s.states(disk.pending), CRASH_SEQUENCE.slice(2), 'what is unacked, in order');
  t.equal(disk.lastSeq, 5);
});
