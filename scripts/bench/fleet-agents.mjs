// Worker of scripts/bench/fleet.sh: runs COUNT simulated agents in one process. Each is the
// real agent's session code (dist/agent/link: transport, session, backoff, outbox,
// command results, convergence) over a fake runtime: start_dyno is admitted at once and the
// dyno reported starting then up; stop_dyno reports stopping then down. Reports to the parent
// over IPC: dial attempts per 100 ms bucket, and how many agents are ready.
// Usage (by fleet-bench.mjs): node fleet-agents.mjs URL TOKEN FIRST COUNT START_RATE
import { resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');
const { LinkSession } = await import(`${ROOT}/dist/agent/link/session.js`);
const { EventOutbox } = await import(`${ROOT}/dist/agent/link/outbox.js`);
const { CommandResults } = await import(`${ROOT}/dist/agent/link/command-results.js`);
const { createRootLogger } = await import(`${ROOT}/dist/shared/log.js`);

const [url, token, firstArg, countArg, rateArg] = process.argv.slice(2);
const FIRST = Number(firstArg);
const COUNT = Number(countArg);
const START_RATE = Number(rateArg); // agents started per second (a fleet's hosts do not all boot at once)
const GIB = 1024 ** 3;
const log = createRootLogger({ level: 'silent' });

let dials = [];
const sessions = [];

function makeAgent(n) {
  const id = `sim-${String(n).padStart(5, '0')}`;
  const dynos = new Map();
  const outbox = new EventOutbox();
  const results = new CommandResults();
  let session;
  const now = () => new Date().toISOString();
  const transition = (from, status) => session.sendEvent(outbox.push(from, status));
  const capacity = async () => {
    const committed = [...dynos.values()].reduce((s, d) => s + d.memoryMb * 1024 * 1024, 0);
    return {
      memory: { totalBytes: 16 * GIB, reservedBytes: GIB, allocatableBytes: 15 * GIB, committedBytes: committed, usedBytes: committed },
      cpu: { cores: 4, load1: 0 }, dynoCount: dynos.size,
      slugCache: { entries: 0, bytes: 0, budgetBytes: 0, freeBytes: 0, slugs: [] }, accepting: true,
    };
  };
  const handlers = {
    ack: (m) => outbox.ack(m.seq),
    start_dyno: (m, ctx) => {
      const { result, repeated } = results.run(m.id, () => {
        const s = m.dyno;
        const status = { id: s.id, app: s.app, type: s.type, name: s.name, state: 'starting', memoryMb: s.size.memoryMb, since: now() };
        dynos.set(s.id, status);
        return { dyno: status };
      });
      ctx.send(result);
      if (!repeated && result.ok) {
        const s = dynos.get(m.dyno.id);
        transition(null, s);
        setTimeout(() => {
          const up = { ...s, state: 'up', since: now(), endpoint: { host: '127.0.0.1', port: 20000 + (n % 10000) } };
          dynos.set(s.id, up);
          transition('starting', up);
        }, 50);
      }
    },
    stop_dyno: (m, ctx) => {
      const { result } = results.run(m.id, () => {
        const d = dynos.get(m.dynoId);
        if (!d) throw Object.assign(new Error('no such dyno'), { code: 'DYNO_NOT_FOUND' });
        const stopping = { ...d, state: 'stopping', since: now() };
        transition(d.state, stopping);
        dynos.delete(d.id);
        setTimeout(() => transition('stopping', { ...stopping, state: 'down', since: now(), exit: { code: 0, signal: null } }), 50);
        return { dyno: stopping };
      });
      ctx.send(result);
    },
    prefetch_slug: (m, ctx) => ctx.send({ type: 'result', id: m.id, ok: true, slug: { sha256: m.slug.sha256, cached: true } }),
    drain: (m, ctx) => ctx.send({ type: 'result', id: m.id, ok: true, host: { accepting: false, stopping: 0 } }),
    undrain: (m, ctx) => ctx.send({ type: 'result', id: m.id, ok: true, host: { accepting: true, stopping: 0 } }),
    error: () => undefined,
  };
  const hello = async () => ({
    type: 'hello', protocol: 1, seqEpoch: `epoch-${id}`,
    agent: { id, hostname: `${id}.fleet`, address: '127.0.0.1', version: 'bench', runtime: 'fake' },
    capacity: await capacity(), dynos: [...dynos.values()],
  });
  session = new LinkSession({
    url, token, log, hello, capacity, outbox, handlers,
    onDial: () => dials.push(Date.now()),
  });
  return session;
}

for (let i = 0; i < COUNT; i++) {
  const s = makeAgent(FIRST + i);
  sessions.push(s);
  setTimeout(() => s.start(), (i / START_RATE) * 1000);
}

setInterval(() => {
  const ready = sessions.filter((s) => s.status().state === 'ready').length;
  process.send({ dials, ready });
  dials = [];
}, 250);

process.on('message', async (m) => {
  if (m === 'stop') {
    await Promise.all(sessions.map((s) => s.close()));
    process.exit(0);
  }
});
