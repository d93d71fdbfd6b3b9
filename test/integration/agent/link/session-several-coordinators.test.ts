// Several coordinators, one leader, over real WebSockets on loopback: each coordinator is an
// HTTP server whose upgrades go either to refuseUpgrade (a follower: 503 COORDINATOR_NOT_LEADER,
// Retry-After 1) or to an AgentServer of the coordinator SDK welcoming with its leader epoch.
// The agent's real session, given both URLs, passes the follower and reaches the leader at
// once; a deposed leader (a lower epoch) is refused: nothing of its welcome is applied, its
// command is answered COORDINATOR_STALE_EPOCH, and its link is closed with 4003.
import t, { type Test } from 'tap';
import { once } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { AgentServer, refuseUpgrade, type AgentApp, type LedgerEntry, type SdkLogger } from '../../../../shared/coordinator-sdk/index.js';
import { CLOSE_STALE_EPOCH } from '../../../../shared/link-close.js';
import { AGENT_WS_PATH, type DynoSpec, type DynoStatus, type ErrorMessage, type Result, type Welcome } from '../../../../shared/protocol.js';
import { STALE_LINK_LINGER_MS } from '../../../../agent/link/session.js';
import { capturingLogger, startSession, TOKEN, until } from './fixtures/link.js';

const SPEC: DynoSpec = {
  id: 'app-web-1', app: 'app', type: 'web', name: 'web.1', size: { name: 'standard-1x', memoryMb: 512, cpuShares: 1024, pidsLimit: 256 },
  command: 'web', env: {}, slug: { url: 'https://slugs.internal/app.tgz', sha256: 'a'.repeat(64) }, stack: 'heroku-24',
};

function dyno(state: DynoStatus['state']): DynoStatus {
  return { id: 'app-worker-1', app: 'app', type: 'worker', name: 'worker.1', state, memoryMb: 512, since: new Date().toISOString() };
}

/** An SdkLogger that keeps every record (the close code of the agent's link is logged). */
function sdkLog(): SdkLogger & { records: Record<string, unknown>[] } {
  const records: Record<string, unknown>[] = [];
  const keep = (obj: object, msg?: string) => void records.push({ ...obj, msg });
  return { records, debug: keep, info: keep, warn: keep, error: keep };
}

/** What one leader term saw of the agent. */
interface Term {
  server: AgentServer;
  hellos: number;
  events: number[];
  errors: ErrorMessage[];
  results: Result[];
  log: ReturnType<typeof sdkLog>;
}

/** A coordinator process on loopback; `follow()` and `lead()` switch what its upgrades get. */
async function coordinator(t: Test, id: string) {
  let serve: (req: IncomingMessage, socket: Duplex, head: Buffer) => void = () => undefined;
  const terms: Term[] = [];
  let refused = 0;
  const http = createServer((_req, res) => { res.statusCode = 404; res.end(); });
  http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => serve(req, socket, head));
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  t.teardown(async () => {
    await Promise.all(terms.map((term) => term.server.close(0)));
    http.closeAllConnections();
    await new Promise((r) => http.close(r));
  });
  const { port } = http.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}${AGENT_WS_PATH}`,
    terms,
    get refused() { return refused; },
    /** A follower: every upgrade is refused, as the reference coordinator's follower does. */
    follow(): void {
      serve = (_req, socket) => {
        refused++;
        refuseUpgrade(socket, 'COORDINATOR_NOT_LEADER', `${id} is a follower; another coordinator leads`, 1);
      };
    },
    /** A leader term with `epoch`: an AgentServer restored from `ledger`, whose app answers
     * the hello with `desired` and, once the welcome is out, sends one start_dyno. */
    lead(epoch: number | undefined, o: { ledger?: LedgerEntry[]; desired?: DynoSpec[]; command?: boolean } = {}): Term {
      const log = sdkLog();
      const term: Term = { hellos: 0, events: [], errors: [], results: [], log, server: undefined as never };
      const app: AgentApp = {
        hello: () => {
          term.hellos++;
          return o.desired ? { desired: o.desired.map((spec) => ({ id: spec.id, spec })) } : undefined;
        },
        ready: (agentId) => {
          if (o.command && term.hellos === 1) void term.server.sendCommand(agentId, { type: 'start_dyno', dyno: SPEC }).then((r) => term.results.push(r), () => undefined);
        },
        event: (_agentId, ev) => void term.events.push(ev.seq),
        capacity: () => undefined,
        error: (_agentId, m) => void term.errors.push(m),
      };
      term.server = new AgentServer({
        token: TOKEN, coordinatorId: `${id}-epoch-${epoch ?? 'none'}`, app, log,
        ...(epoch !== undefined ? { epoch } : {}), ...(o.ledger ? { ledger: o.ledger } : {}),
      });
      terms.push(term);
      serve = (req, socket, head) => term.server.handleUpgrade(req, socket, head);
      return term;
    },
  };
}

t.test('given a follower and the leader, the agent passes the follower at once and links to the leader', async (t) => {
  const follower = await coordinator(t, 'c1');
  const leader = await coordinator(t, 'c2');
  follower.follow();
  const term = leader.lead(2);
  const logged = capturingLogger();
  const welcomes: Welcome[] = [];
  // A backoff of 5 s: had the agent waited for it after the follower's refusal, it would be late.
  const started = performance.now();
  // (The fixture's handlers only count: an ack does not empty the outbox here.)
  const { session, outbox } = startSession(t, follower.url, {
    urls: [follower.url, leader.url], reconnectInitialMs: 5_000, log: logged.log, onWelcome: (w) => welcomes.push(w),
  });
  outbox.push(null, dyno('starting'));
  await until('the link to the leader', () => session.status().state === 'ready' || undefined, 4_000);
  const tookMs = performance.now() - started;
  t.ok(tookMs < 2_000, `ready after ${Math.round(tookMs)} ms: no backoff between the follower and the leader`);
  t.equal(follower.refused, 1, 'the follower was dialled once and refused the upgrade');
  t.match(session.status(), { coordinatorUrl: leader.url, leaderEpoch: 2, reconnects: 1, lastError: 'coordinator refused the upgrade: HTTP 503 COORDINATOR_NOT_LEADER' });
  t.match(welcomes, [{ epoch: 2, coordinatorId: 'c2-epoch-2' }]);
  t.match(logged.lines(), /COORDINATOR_NOT_LEADER/, "the refusal's code is in the log");
  t.match(logged.lines(), /dialling the next coordinator URL/);
  await until('the event at the leader', () => term.events.length > 0 || undefined);
  t.same(term.events, [1], 'the unsent event went to the leader');
});

t.test('a deposed leader (lower epoch) is refused: nothing applied, its command answered COORDINATOR_STALE_EPOCH, its link closed 4003', async (t) => {
  const a = await coordinator(t, 'c1');
  const b = await coordinator(t, 'c2');
  a.follow();
  const current = b.lead(2);
  const welcomes: Welcome[] = [];
  const { session, outbox, counts } = startSession(t, a.url, { urls: [a.url, b.url], reconnectInitialMs: 200, onWelcome: (w) => welcomes.push(w) });
  await until('the link to the epoch-2 leader', () => (session.status().state === 'ready' && session.status().coordinatorUrl === b.url) || undefined);

  // c1, the leader of epoch 1 once, resumes (a SIGSTOP ends) still believing it leads: it
  // welcomes with epoch 1, an ackSeq that would drop the agent's unsent event, a desired set,
  // and a start_dyno right behind the welcome. c2 steps down and closes the agent's link.
  const deposed = a.lead(1, { ledger: [{ agentId: 'agent-1', seqEpoch: 'epoch-link-test', lastSeq: 99 }], desired: [SPEC], command: true });
  b.follow();
  await current.server.close(0);
  outbox.push(null, dyno('starting'));

  await until('the deposed leader to get its answer', () => deposed.results[0], 5_000);
  t.match(deposed.results[0], { ok: false, error: { code: 'COORDINATOR_STALE_EPOCH', retryable: false } }, 'its start_dyno was refused, not executed');
  t.match(deposed.errors, [{ code: 'COORDINATOR_STALE_EPOCH', ref: 'welcome' }], 'and it was told why its welcome was refused');
  const closed = await until('its link closed', () => deposed.log.records.find((r) => r.msg === 'agent link closed'), STALE_LINK_LINGER_MS + 3_000);
  t.equal(closed.code, CLOSE_STALE_EPOCH, 'closed by the agent with 4003');

  t.equal(counts.start_dyno ?? 0, 0, 'no command ran');
  t.equal(welcomes.length, 1, 'the epoch-1 welcome was not applied (no convergence to its desired set)');
  t.same(outbox.unacked().map((e) => e.seq), [1], "its ackSeq 99 dropped nothing from the outbox");
  t.same(deposed.events, [], 'no event was sent to it');
  t.not(session.status().state, 'ready');
  t.equal(session.status().leaderEpoch, 2, 'the highest epoch stays 2');
  // The refusal is the last error until the next dial: a round goes on to the next URL at
  // once, and c2 (a follower now) refuses the upgrade, which may already be the last error.
  t.match(session.status().lastError, /epoch 1, below epoch 2|HTTP 503 COORDINATOR_NOT_LEADER/, 'the stale welcome refused (or the next URL dialled already)');

  // A new leader (epoch 3) takes over at c2: the agent links to it and its event gets there.
  const next = b.lead(3);
  await until('the link to the epoch-3 leader', () => (session.status().state === 'ready' && session.status().leaderEpoch === 3) || undefined, 10_000);
  await until('the event at the new leader', () => next.events.length > 0 || undefined);
  t.same(next.events, [1], 'the event the deposed leader would have dropped reached the new one');
  t.match(welcomes, [{ epoch: 2 }, { epoch: 3, coordinatorId: 'c2-epoch-3' }]);
  t.equal(deposed.results.length, 1, 'the deposed leader got no further say');
});

t.test('one URL, no epochs: a coordinator restart is taken as before the list existed', async (t) => {
  const c = await coordinator(t, 'c1');
  c.lead(undefined);
  const first = c.terms[0]!;
  const welcomes: Welcome[] = [];
  const { session } = startSession(t, c.url, { reconnectInitialMs: 50, onWelcome: (w) => welcomes.push(w) });
  await until('ready', () => session.status().state === 'ready' || undefined);
  c.lead(undefined);
  await first.server.close(0);
  await until('the second welcome', () => welcomes.length >= 2 || undefined, 5_000);
  t.match(session.status(), { state: 'ready', coordinatorUrl: c.url, leaderEpoch: 0 });
  t.equal(welcomes[1]!.epoch, undefined, 'a coordinator without a shared store sends no epoch');
  t.equal(c.terms[1]!.hellos, 1, 'the restarted coordinator got the hello');
  t.equal(session.status().lastClose!.namedByCoordinator, true, 'the restart named its time (1012), as with one coordinator always');
});
