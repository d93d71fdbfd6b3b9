// Worker of scripts/bench/fleet.sh: runs COUNT simulated agents in one process. Each is the
// real agent's session code (DIST/agent/link: transport, session, URL rotation, backoff,
// outbox, command results) over a fake runtime: start_dyno is admitted at once and the dyno
// reported starting then up; stop_dyno reports stopping then down. URLS is one coordinator
// URL, or several (comma-separated) sharing one store: the session tries them in turn.
// Reports to the parent over IPC every 250 ms: dial attempts (time and URL) and how many
// agents are ready, on which URL; on 'report', what the agents were told to start (start_dyno,
// and welcomes that list a dyno with a spec the agent does not run) and which dynos each holds.
// Usage (by fleet-lib.mjs): node fleet-agents.mjs DIST URLS TOKEN FIRST COUNT START_RATE
const [dist, urlsArg, token, firstArg, countArg, rateArg] = process.argv.slice(2);
const { LinkSession } = await import(`${dist}/agent/link/session.js`);
const { EventOutbox } = await import(`${dist}/agent/link/outbox.js`);
const { CommandResults } = await import(`${dist}/agent/link/command-results.js`);
const { createRootLogger } = await import(`${dist}/shared/log.js`);

const URLS = urlsArg.split(',');
const FIRST = Number(firstArg);
const COUNT = Number(countArg);
const START_RATE = Number(rateArg); // agents started per second (a fleet's hosts do not all boot at once)
const GIB = 1024 ** 3;
const log = createRootLogger({ level: 'silent' });
// One URL as before the list existed (`url`); several as the agent's coordinatorUrls (`urls`).
const dialTo = URLS.length === 1 ? { url: URLS[0] } : { urls: URLS };

let dials = [];
let dialUrls = [];
/** start_dyno and stop_dyno commands (not repeats), welcomes' desired specs not run, dynos a
 * welcome left unlisted: what the driver checks for a dyno placed twice or lost. */
const starts = [];
const welcomeStarts = [];
const stops = [];
const unlisted = [];
const agents = [];
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
      const already = dynos.has(m.dyno.id);
      const { result, repeated } = results.run(m.id, () => {
        const s = m.dyno;
        const status = { id: s.id, app: s.app, type: s.type, name: s.name, state: 'starting', memoryMb: s.size.memoryMb, since: now() };
        dynos.set(s.id, status);
        return { dyno: status };
      });
      ctx.send(result);
      if (!repeated) starts.push({ at: Date.now(), agent: id, dynoId: m.dyno.id, already });
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
      const { result, repeated } = results.run(m.id, () => {
        const d = dynos.get(m.dynoId);
        if (!d) throw Object.assign(new Error('no such dyno'), { code: 'DYNO_NOT_FOUND' });
        const stopping = { ...d, state: 'stopping', since: now() };
        transition(d.state, stopping);
        dynos.delete(d.id);
        setTimeout(() => transition('stopping', { ...stopping, state: 'down', since: now(), exit: { code: 0, signal: null } }), 50);
        return { dyno: stopping };
      });
      if (!repeated) stops.push({ at: Date.now(), agent: id, dynoId: m.dynoId });
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
  // What the welcome says about this host's dynos (the real agent converges on it: a listed
  // spec it does not run it starts; a dyno left unlisted it stops after a grace). This fake
  // only records both: either after a failover would be a dyno placed again, or one lost.
  const onWelcome = (welcome) => {
    if (!welcome.desired) return;
    const listed = new Set(welcome.desired.map((d) => d.id));
    for (const d of welcome.desired) if (d.spec && !dynos.has(d.id)) welcomeStarts.push({ at: Date.now(), agent: id, dynoId: d.id });
    for (const dynoId of dynos.keys()) if (!listed.has(dynoId)) unlisted.push({ at: Date.now(), agent: id, dynoId });
  };
  session = new LinkSession({
    ...dialTo, token, log, hello, capacity, outbox, handlers, onWelcome,
    // The URL being dialled is the session's current one (status() reads the rotation).
    onDial: () => { dials.push(Date.now()); dialUrls.push(URLS.indexOf(session.status().coordinatorUrl ?? URLS[0])); },
  });
  agents.push({ id, dynos });
  return session;
}

for (let i = 0; i < COUNT; i++) {
  const s = makeAgent(FIRST + i);
  sessions.push(s);
  setTimeout(() => s.start(), (i / START_RATE) * 1000);
}
// A build from before the agent took a list of URLs would dial only one of them (or none).
if (URLS.length > 1 && sessions[0] && sessions[0].status().coordinatorUrl !== URLS[0]) {
  console.error('fleet-agents: this build\'s LinkSession does not take a list of coordinator URLs (urls); rebuild (scripts/setup.sh)');
  process.exit(2);
}

setInterval(() => {
  let ready = 0;
  const readyOn = new Array(URLS.length).fill(0);
  for (const s of sessions) {
    const st = s.status();
    if (st.state !== 'ready') continue;
    ready++;
    readyOn[Math.max(0, URLS.indexOf(st.coordinatorUrl ?? URLS[0]))]++;
  }
  process.send({ kind: 'status', dials, dialUrls, ready, readyOn });
  dials = [];
  dialUrls = [];
}, 250);

// The parent went away (even by SIGKILL): no simulated agent outlives the benchmark.
process.on('disconnect', () => process.exit(0));
process.on('message', async (m) => {
  if (m === 'report') {
    const held = agents.flatMap((a) => [...a.dynos.keys()].map((dynoId) => ({ agent: a.id, dynoId })));
    process.send({ kind: 'report', starts, stops, welcomeStarts, unlisted, held });
  }
  if (m === 'stop') {
    await Promise.all(sessions.map((s) => s.close()));
    process.exit(0);
  }
});
