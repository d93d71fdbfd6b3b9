// The whole coordinator with `--router haproxy` (startCoordinator, a memory store, HAProxy 2.6
// from coordinator/app-router.ts) under a steady request load (8 keep-alive clients, about 300
// requests a second, bounded in count and time) through its router with Host: shop.localhost.
// A scripted agent on a real WebSocket runs the dynos as real HTTP servers in this process
// (haproxy/fixtures/dyno.ts): on start_dyno it starts one and reports it `up` with its port;
// on stop_dyno it reports `stopping`, closes it like a dyno after SIGTERM (finish what is in
// flight, refuse new) and reports `down`. What the coordinator itself must get right is the
// order: a new dyno's route once it is up, a release's old dynos out of the route table only
// once the new ones are routable (preboot), and no stop_dyno before HAProxy drained the route.
// Scale-up, scale-down, a release change and a reload for a new app's backend drop nothing;
// after HAProxy is SIGKILLed it comes back with every route; a dyno crash fails at most the
// requests that were in flight on it.
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { createRootLogger } from '../../../shared/log.js';
import type { CoordinatorMessage, DynoSpec, StartDyno, StopDyno } from '../../../shared/protocol.js';
import { DEFAULT_SIZES } from '../../../shared/sizes.js';
import { DEFAULT_TIMING } from '../../../coordinator/config.js';
import { RuntimeApi } from '../../../coordinator/haproxy/runtime-api.js';
import { draining, inMaintenance, parseProc, parseServersState, type ProcTable, type ServerState } from '../../../coordinator/haproxy/state.js';
import { startCoordinator, type RunningCoordinator } from '../../../coordinator/start.js';
import { http, TEST_API_TOKEN } from '../../helpers/http.js';
import { connectScriptedAgent, type ScriptedAgent } from '../../helpers/scripted-agent.js';
import { startDyno, type FakeDyno } from './haproxy/fixtures/dyno.js';
import { startLoad, type LoadSummary } from './haproxy/fixtures/load.js';
import { eventually, haveHaproxy, send } from './haproxy/fixtures/router.js';

const skip = !haveHaproxy && 'no /usr/sbin/haproxy';
const TOKEN = 'agent-token-for-tests-0123456789';
const LOAD = { clients: 8, rps: 300, maxRequests: 20_000, maxMs: 30_000 };
/** Short: HAProxy's unix sockets live in the work dir (sun_path holds 108 bytes). */
const WORK_PREFIX = join(tmpdir(), 'slw-ar-');
const SHOP = 'shop.localhost';

const slug = (v: string) => ({ url: `http://127.0.0.1:1/${v}.tgz`, sha256: (v === 'v1' ? 'a' : 'b').repeat(64) });
const formation = (quantity: number, release = 'v1') => ({ quantity, size: 'standard-1x', command: 'node server.js', slug: slug(release), release });

/** What the agent saw when stop_dyno arrived: HAProxy's servers of the dyno's app then. */
interface StopSeen {
  dynoId: string;
  /** Position in the agent's log of `up` reports and stops. */
  at: number;
  servers: ServerState[];
}

interface Fleet {
  c: RunningCoordinator;
  agent: ScriptedAgent;
  workDir: string;
  routerPort: number;
  admin: RuntimeApi;
  /** Running dyno servers by dyno id (the body they answer with). */
  dynos: Map<string, FakeDyno>;
  specs: Map<string, DynoSpec>;
  /** `up:<id>` when the agent reported a dyno up, `stop:<id>` when stop_dyno arrived. */
  log: string[];
  stops: StopSeen[];
  /** Resolves once every stop_dyno so far has been carried out (the dyno closed, `down` sent). */
  stopsDone(): Promise<void>;
  put(app: string, body: unknown): Promise<void>;
  /** Resolves once HAProxy serves exactly `ids` for `app`, each in service. */
  serving(app: string, ids: string[]): Promise<void>;
  wantedIds(app: string): string[];
  close(): Promise<void>;
}

/** Pids of HAProxy processes (master and workers) whose command line names `dir`. */
async function haproxyPids(dir: string): Promise<number[]> {
  const out: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    const args = cmdline.split('\0');
    if (args[0]?.endsWith('haproxy') && args.some((a) => a.startsWith(dir))) out.push(Number(entry));
  }
  return out;
}

const inService = (s: ServerState): boolean => s.opState === 2 && s.adminState === 0;

/** The master's `show proc`. Retried: the new worker serves a reload's config (what serving()
 * waits for) a moment before the re-executed master answers on its CLI again. */
async function masterProc(fleet: Fleet): Promise<ProcTable> {
  const master = new RuntimeApi(join(fleet.workDir, 'master.sock'));
  let proc: ProcTable | undefined;
  await eventually('the haproxy master answers on its CLI', async () => {
    proc = await master.show('show proc').then(parseProc).catch(() => undefined);
    return proc !== undefined && proc.workers.length > 0;
  }, 5_000);
  return proc!;
}

/** Counters of one server from `show stat` (sessions, redispatches, 2xx answers, current). */
async function serverStats(fleet: Fleet, app: string, server: string): Promise<Record<'stot' | 'scur' | 'wredis' | 'hrsp_2xx', number>> {
  const [header, ...rows] = (await fleet.admin.show(`show stat app_${app} 4 -1`)).trim().split('\n');
  const names = header!.replace(/^#\s*/, '').split(',');
  const row = rows.map((r) => r.split(',')).find((f) => f[1] === server);
  if (!row) throw new Error(`show stat has no server ${server} in app_${app}`);
  const field = (name: string): number => Number(row[names.indexOf(name)] || 0);
  return { stot: field('stot'), scur: field('scur'), wredis: field('wredis'), hrsp_2xx: field('hrsp_2xx') };
}

async function startFleet(t: Test, apps: Record<string, number>): Promise<Fleet> {
  const workDir = await mkdtemp(WORK_PREFIX);
  const made: { c?: RunningCoordinator; agent?: ScriptedAgent } = {};
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await made.agent?.close();
      await made.c?.close();
    })();
    return closing;
  };
  // Registered first, so that a fleet that failed half-way is cleaned up too: the coordinator
  // (and with it HAProxy) before anything HAProxy could still hold, then whatever HAProxy
  // process survived (none should: the test asserts it), then the work dir.
  t.teardown(async () => {
    await close().catch(() => undefined);
    for (const pid of await haproxyPids(workDir)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    await rm(workDir, { recursive: true, force: true });
  });
  const c = made.c = await startCoordinator({
    listen: { host: '127.0.0.1', port: 0 }, routerListen: { host: '127.0.0.1', port: 0 }, token: TOKEN, apiTokens: [TEST_API_TOKEN],
    coordinatorId: 'test-coordinator', defaultStack: 'busybox', sizes: DEFAULT_SIZES,
    timing: { ...DEFAULT_TIMING, commandTimeoutMs: 5_000 },
    store: { kind: 'memory' }, router: 'haproxy', routerWorkDir: workDir,
  }, createRootLogger({ level: process.env.SLIPWAY_TEST_LOG ?? 'silent' }));
  const admin = new RuntimeApi(join(workDir, 'admin.sock'));
  const dynos = new Map<string, FakeDyno>();
  const specs = new Map<string, DynoSpec>();
  const log: string[] = [];
  const stops: StopSeen[] = [];
  const stopping: Promise<void>[] = [];
  made.agent = await connectScriptedAgent({
    url: c.agentUrl, token: TOKEN, allocatableMb: 8192,
    onStart: async (spec) => {
      const dyno = await startDyno(t, spec.id);
      dynos.set(spec.id, dyno);
      specs.set(spec.id, spec);
      log.push(`up:${spec.id}`); // the result (`up`) goes out right after this
      return { host: '127.0.0.1', port: dyno.port };
    },
    onStop: (dynoId) => {
      const at = log.push(`stop:${dynoId}`) - 1;
      const app = specs.get(dynoId)?.app ?? 'shop';
      const done = (async () => {
        const servers = parseServersState(await admin.show(`show servers state app_${app}`)).filter((s) => s.backend === `app_${app}`);
        stops.push({ dynoId, at, servers });
        await dynos.get(dynoId)?.stopGracefully(5_000);
        dynos.delete(dynoId);
      })();
      stopping.push(done);
      return done;
    },
  });
  const routerPort = Number(new URL(c.routerUrl).port);
  const fleet: Fleet = {
    c, agent: made.agent, workDir, routerPort, admin, dynos, specs, log, stops,
    stopsDone: async () => { await Promise.all(stopping); },
    async put(app, body) {
      const res = await http('PUT', `${c.apiUrl}/apps/${app}/formation/web`, body);
      if (res.status !== 200) throw new Error(`PUT /apps/${app}/formation/web: ${res.status} ${res.body}`);
    },
    async serving(app, ids) {
      const want = [...ids].sort().join();
      await eventually(`haproxy serves ${want} for ${app}`, async () => {
        const servers = parseServersState(await admin.show(`show servers state app_${app}`).catch(() => '')).filter((s) => s.backend === `app_${app}`);
        return servers.map((s) => s.name).sort().join() === want && servers.every(inService);
      });
    },
    wantedIds: (app) => [...dynos.keys()].filter((id) => specs.get(id)?.app === app).sort(),
    close,
  };
  for (const [app, quantity] of Object.entries(apps)) {
    await fleet.put(app, formation(quantity));
    await fleet.serving(app, fleet.wantedIds(app));
  }
  return fleet;
}

const starts = (received: CoordinatorMessage[]): StartDyno[] => received.filter((m): m is StartDyno => m.type === 'start_dyno');
const stopsOf = (received: CoordinatorMessage[]): StopDyno[] => received.filter((m): m is StopDyno => m.type === 'stop_dyno');

function report(t: Test, s: LoadSummary): void {
  t.comment(`${s.total} requests in ${s.ms} ms, ${s.failures.length} failed, by dyno ${JSON.stringify(s.byDyno)}`);
  if (s.failures.length > 0) t.comment(`failures: ${JSON.stringify(s.failures.slice(0, 5))}`);
}

/** Ends the fleet inside the test and shows that no HAProxy process of its work dir is left. */
async function shutDown(t: Test, fleet: Fleet): Promise<void> {
  await fleet.close();
  t.same(await haproxyPids(fleet.workDir), [], 'no haproxy process of the work dir is left after close()');
}

/** Every stop_dyno found its dyno's server drained (or already out) in HAProxy: no request was
 * picked for a dyno after its SIGTERM. */
function drainedBeforeStop(t: Test, fleet: Fleet): void {
  for (const stop of fleet.stops) {
    const server = stop.servers.find((s) => s.name === stop.dynoId);
    t.ok(!server || draining(server) || inMaintenance(server), `${stop.dynoId} was out of rotation in haproxy when its stop_dyno arrived`);
  }
}

t.test('scale-up 1 -> 3 under load: no failed request', { skip, timeout: 60_000 }, async (t) => {
  const fleet = await startFleet(t, { shop: 1 });
  const load = startLoad({ port: fleet.routerPort, host: SHOP, ...LOAD });
  await load.answered(300);
  await fleet.put('shop', formation(3));
  const ids = fleet.wantedIds('shop');
  t.equal(ids.length, 3, 'three dynos run');
  await fleet.serving('shop', ids);
  const mark = await load.mark();
  await load.answered(600);
  const s = await load.stop();
  report(t, s);
  t.ok(s.total >= 900, `${s.total} requests sent`);
  t.equal(s.failures.length, 0, `no failed request of ${s.total}`);
  const after = s.sequence.slice(mark);
  for (const id of ids) t.ok(after.filter((d) => d === id).length > 50, `${id} takes its share`);
  t.equal(stopsOf(fleet.agent.received).length, 0, 'nothing was stopped');
  await shutDown(t, fleet);
});

t.test('scale-down 3 -> 1 under load: drained before stop_dyno, no failed request', { skip, timeout: 60_000 }, async (t) => {
  const fleet = await startFleet(t, { shop: 3 });
  const [web1, ...victims] = fleet.wantedIds('shop') as [string, ...string[]];
  const load = startLoad({ port: fleet.routerPort, host: SHOP, ...LOAD });
  await load.answered(300);
  await fleet.put('shop', formation(1));
  await fleet.stopsDone();
  await fleet.serving('shop', [web1]);
  const mark = await load.mark();
  await load.answered(300);
  const s = await load.stop();
  report(t, s);
  t.ok(s.total >= 600, `${s.total} requests sent`);
  t.equal(s.failures.length, 0, `no failed request of ${s.total}`);
  t.same(stopsOf(fleet.agent.received).map((m) => m.dynoId).sort(), victims.sort(), 'web.2 and web.3 were stopped');
  drainedBeforeStop(t, fleet);
  t.same(s.sequence.slice(mark).filter((d) => d !== web1), [], 'then web.1 alone serves');
  await shutDown(t, fleet);
});

t.test('a release change under load: preboot, then the old dynos drain and stop; no failed request', { skip, timeout: 60_000 }, async (t) => {
  const fleet = await startFleet(t, { shop: 3 });
  const v1 = fleet.wantedIds('shop');
  const load = startLoad({ port: fleet.routerPort, host: SHOP, ...LOAD });
  await load.answered(300);
  await fleet.put('shop', formation(3, 'v2'));
  await fleet.stopsDone();
  const v2 = fleet.wantedIds('shop');
  await fleet.serving('shop', v2);
  const mark = await load.mark();
  await load.answered(300);
  const s = await load.stop();
  report(t, s);
  t.ok(s.total >= 600, `${s.total} requests sent`);
  t.equal(s.failures.length, 0, `no failed request of ${s.total}`);

  t.equal(v2.length, 3, 'three new dynos');
  t.same(v2.filter((id) => v1.includes(id)), [], 'every dyno was replaced');
  t.ok(v2.every((id) => fleet.specs.get(id)?.slug.sha256 === slug('v2').sha256), 'the new dynos run the new slug');
  t.same(stopsOf(fleet.agent.received).map((m) => m.dynoId).sort(), [...v1].sort(), 'every old dyno got stop_dyno, and no new one');
  // Preboot, per dyno index: the old web.N is stopped only after the new web.N was reported up,
  // and HAProxy had the new one in service when the stop arrived.
  const byName = (ids: string[]) => new Map(ids.map((id) => [fleet.specs.get(id)!.name, id]));
  const oldByName = byName(v1);
  for (const [name, newId] of byName(v2)) {
    const oldId = oldByName.get(name)!;
    const stop = fleet.stops.find((x) => x.dynoId === oldId);
    t.ok(stop, `${name}: the old dyno was stopped`);
    if (!stop) continue;
    t.ok(fleet.log.indexOf(`up:${newId}`) < stop.at, `${name}: the new dyno was up before the old one's stop_dyno`);
    const replacement = stop.servers.find((x) => x.name === newId);
    t.ok(replacement && inService(replacement), `${name}: haproxy served the new dyno when the old one's stop_dyno arrived`);
  }
  const lastUp = Math.max(...v2.map((id) => fleet.log.indexOf(`up:${id}`)));
  const firstStop = Math.min(...fleet.stops.map((x) => x.at));
  t.comment(`agent log: ${fleet.log.map((l) => l.replace(/^(\w+):shop-web-(\d)-\w+$/, '$1 web.$2')).join(', ')} (all new up before the first stop: ${lastUp < firstStop})`);
  drainedBeforeStop(t, fleet);
  t.same(s.sequence.slice(mark).filter((d) => !v2.includes(d)), [], 'then the new release alone serves');
  await shutDown(t, fleet);
});

t.test('a new app in the middle of traffic (regenerated config, hitless reload): no failed request', { skip, timeout: 60_000 }, async (t) => {
  const fleet = await startFleet(t, { shop: 2 });
  const shop = fleet.wantedIds('shop');
  const before = await masterProc(fleet);
  const load = startLoad({ port: fleet.routerPort, host: SHOP, ...LOAD });
  await load.answered(300);
  for (const app of ['blog', 'wiki']) {
    // A formation for a new app: its first route needs a backend, which 2.6 cannot add at runtime.
    await fleet.put(app, formation(1));
    await fleet.serving(app, fleet.wantedIds(app));
    await load.answered(200);
  }
  const mark = await load.mark();
  await load.answered(200);
  const s = await load.stop();
  const after = await masterProc(fleet);
  report(t, s);
  t.ok(s.total >= 700, `${s.total} requests sent`);
  t.equal(s.failures.length, 0, `no failed request of ${s.total}`);
  t.equal(after.reloads, before.reloads + 2, 'one reload per new app');
  t.not(after.workers[0], before.workers[0], 'a new worker serves');
  t.equal(after.masterPid, before.masterPid, 'the same master (a reload, not a restart)');
  await fleet.serving('shop', shop);
  t.ok(shop.every((id) => s.sequence.slice(mark).includes(id)), 'both shop dynos serve after the reloads');
  for (const app of ['blog', 'wiki']) t.same((await send(fleet.routerPort, `${app}.localhost`)).body, fleet.wantedIds(app)[0], `${app} is served`);
  await shutDown(t, fleet);
});

t.test('HAProxy SIGKILLed in the middle of traffic: it comes back and serves every route', { skip, timeout: 60_000 }, async (t) => {
  const fleet = await startFleet(t, { shop: 2, blog: 1 });
  const shop = fleet.wantedIds('shop');
  const { masterPid } = await masterProc(fleet);
  t.ok((await haproxyPids(fleet.workDir)).includes(masterPid), 'the master CLI names a haproxy process of this work dir');
  const load = startLoad({ port: fleet.routerPort, host: SHOP, ...LOAD });
  await load.answered(300);
  // While no HAProxy listens, requests fail (connection refused, or cut): there is no
  // zero-failure claim here, only that the router comes back by itself with every route.
  process.kill(masterPid, 'SIGKILL');
  const killedAt = Date.now() - load.startedAt;
  await eventually('a new haproxy master serves', async () => {
    const proc = await masterProc(fleet).catch(() => undefined);
    return proc !== undefined && proc.masterPid !== masterPid;
  });
  await fleet.serving('shop', shop);
  await fleet.serving('blog', fleet.wantedIds('blog'));
  const backAt = Date.now() - load.startedAt;
  const mark = await load.mark();
  await load.answered(300);
  const blog = await send(fleet.routerPort, 'blog.localhost');
  const s = await load.stop();
  report(t, s);
  t.comment(`haproxy back ${backAt - killedAt} ms after the kill: ${s.failures.length} failed requests of ${s.total}`);
  const before = s.failures.filter((f) => f.at < killedAt);
  t.ok(before.length <= LOAD.clients, `of the requests sent before the kill, only those in flight at it failed (${before.length})`);
  t.same(s.failures.filter((f) => f.at > backAt), [], 'nothing sent after it was back failed');
  t.ok(shop.every((id) => s.sequence.slice(mark).includes(id)), 'both shop dynos serve again');
  t.same([blog.status, blog.body], [200, fleet.wantedIds('blog')[0]], 'blog is served again');
  t.notOk((await haproxyPids(fleet.workDir)).includes(masterPid), 'the killed master is gone');
  await shutDown(t, fleet);
});

t.test('a dyno crash under load: only the requests in flight on it may fail', { skip, timeout: 60_000 }, async (t) => {
  const fleet = await startFleet(t, { shop: 3 });
  const ids = fleet.wantedIds('shop');
  const victimId = ids[2]!;
  const victim = fleet.dynos.get(victimId)!;
  const load = startLoad({ port: fleet.routerPort, host: SHOP, ...LOAD });
  await load.answered(300);
  const before = await serverStats(fleet, 'shop', victimId);
  t.ok(before.stot - before.wredis - before.hrsp_2xx <= before.scur, 'before the crash, every request the dyno had is answered or in flight');
  const crashAt = Date.now() - load.startedAt;
  const openAtCrash = victim.connections;
  victim.crash();
  // The agent notices the exit a moment later: until then the route stays, connections to the
  // dead port are refused and HAProxy sends those requests to another dyno (retry-on
  // conn-failure, redispatch).
  await load.answered(100);
  // HAProxy's count for the victim: its sessions (stot), those redispatched after a refused
  // connection (wredis) and its answers (hrsp_2xx). A session neither redispatched nor
  // answered was a request in flight on the dyno when it crashed.
  const after = await serverStats(fleet, 'shop', victimId);
  const cut = after.stot - after.wredis - after.hrsp_2xx;
  const status = fleet.agent.dynos.get(victimId)!;
  const { endpoint: _endpoint, ...rest } = status;
  fleet.agent.sendNext({ ...rest, state: 'crashed', since: new Date().toISOString(), exit: { code: 1, signal: null } }, 'up');
  await fleet.serving('shop', ids.filter((id) => id !== victimId));
  await load.answered(300);
  const s = await load.stop();
  report(t, s);
  t.comment(`on ${victimId}: ${openAtCrash} connections open at the crash, ${cut} requests cut, ${after.wredis - before.wredis} refused and redispatched`);
  t.ok(s.total >= 700, `${s.total} requests sent`);
  t.ok(after.wredis > before.wredis, 'requests to the crashed dyno went to another one');
  t.ok(cut <= LOAD.clients, `no more requests were cut (${cut}) than the load has in flight at once (${LOAD.clients})`);
  t.ok(s.failures.length <= cut, `every failed request (${s.failures.length}) was one in flight on the crashed dyno (${cut})`);
  t.same(s.failures.filter((f) => f.at > crashAt), [], 'every request sent after the crash succeeded');
  for (const f of s.failures) t.ok(f.status === 502 || f.error === 'socket hang up' || f.error === 'read ECONNRESET', `a cut request: ${JSON.stringify(f)}`);
  t.equal(stopsOf(fleet.agent.received).length, 0, 'the coordinator stopped nothing');
  t.equal(starts(fleet.agent.received).length, 3, 'and started nothing more (restarts are the agent\'s)');
  await shutDown(t, fleet);
});

t.test('no haproxy process of this file is left', { skip }, async (t) => {
  t.same(await haproxyPids(WORK_PREFIX), []);
});
