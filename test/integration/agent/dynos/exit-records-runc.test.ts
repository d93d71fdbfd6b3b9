// The record of every exit and the agent's decisions (issue 14, items 3 and 4), against real
// runc, conmon and cgroups (v1 on this host): a crash loop, a kernel OOM kill at the memory
// limit, a web dyno's time to bind $PORT, R10 and R12. Each dyno's output goes through a real
// LogShipper (the exit's last lines come from it); the records and the decisions are read
// through the real diagnostics server, as the CLI reads them. Times are shortened by
// configuration (restart base 300 ms, boot timeout 1 s, grace 500 ms).
import t, { type Test } from 'tap';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DecisionLog, type Decision } from '../../../../agent/diagnostics/decisions.js';
import { createDiagnosticsServer } from '../../../../agent/diagnostics/server.js';
import { Dyno } from '../../../../agent/dynos/dyno.js';
import { ExitRecords, type ExitRecord } from '../../../../agent/dynos/exit-records.js';
import { LogShipper } from '../../../../agent/dynos/log-shipper.js';
import { PortAllocator } from '../../../../agent/dynos/ports.js';
import type { RestartPolicyOptions } from '../../../../agent/dynos/restart-policy.js';
import { RuncDriver } from '../../../../agent/runtime/runc/driver.js';
import { createSlugStore } from '../../../../agent/slugs/factory.js';
import { StackStore } from '../../../../agent/stacks/stacks.js';
import type { DynoSpec, DynoStateName, DynoStatus } from '../../../../shared/protocol.js';
import { busyboxStack, quietLogger, removeCgroupParent, tempDir, uniqueName } from '../../../helpers/host.js';
import { getJson, http } from '../../../helpers/http.js';
import { makeSlug } from '../../../helpers/slugs.js';

const MB = 1024 * 1024;
const TOKEN = 'exit-records-test-token-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };
const cgroupParent = `/${uniqueName('slipway-test-')}`;
const log = quietLogger();
const driver = new RuncDriver({ cgroupParent, log });
const stacksDir = join(busyboxStack(), '..');
const prefix = uniqueName('xr');
const dynos: Dyno[] = [];

t.teardown(async () => {
  await Promise.all(dynos.map((d) => d.stop(0).catch(() => undefined)));
  removeCgroupParent(cgroupParent);
});

interface Seen { from: DynoStateName | null; state: DynoStateName; at: number; status: DynoStatus }

async function world(t: Test, opts: { restartPolicy?: RestartPolicyOptions; bootTimeoutMs?: number; memoryMb?: number } = {}) {
  const dir = await tempDir(t, 'slipway-xr-');
  const slug = await makeSlug(dir, { Procfile: 'web: true\n', 'public/index.html': 'hi\n' });
  const slugFile = join(dir, 'slug.tgz');
  await writeFile(slugFile, slug.bytes);
  const slugs = createSlugStore({ dir: join(dir, 'slugs'), owner: { uid: 64000, gid: 64000 }, budgetBytes: 1024 ** 3, floorBytes: 0, s3: {} }, log);
  await slugs.init();
  const ports = new PortAllocator(43000 + Math.floor(Math.random() * 1000), 44999, '127.0.0.1');
  const shipper = new LogShipper({ pollMs: 100 });
  shipper.start();
  t.teardown(() => shipper.stop());
  const decisions = new DecisionLog({ now: () => Date.now() });
  const exits = new ExitRecords({ recentLines: (id, n) => shipper.recent(id, n) });
  const seen: Seen[] = [];
  const make = (name: string, type: string, command: string): Dyno => {
    const spec: DynoSpec = {
      id: `${prefix}-${name}`, app: 'xrapp', type, name: `${type}.1`, command, env: {}, release: 'v7',
      size: { name: 'standard-1x', memoryMb: opts.memoryMb ?? 128, cpuShares: 512, pidsLimit: 64 },
      slug: { url: `file://${slugFile}`, sha256: slug.sha256 }, stack: 'busybox',
    };
    const d = new Dyno(spec, {
      driver, slugs, ports, stacks: new StackStore(stacksDir), log, logs: shipper, decisions, exits,
      settings: { dynosDir: join(dir, 'dynos'), address: '127.0.0.1', dynoUser: { uid: 64000, gid: 64000 }, bootTimeoutMs: opts.bootTimeoutMs ?? 10_000, nofile: 1024 },
      onTransition: (from, status) => { seen.push({ from, state: status.state, at: Date.now(), status }); },
      ...(opts.restartPolicy ? { restartPolicy: opts.restartPolicy } : {}),
      memory: { r15Multiple: 2, r14IntervalMs: 60_000 },
    });
    dynos.push(d);
    return d;
  };
  const nth = async (state: DynoStateName, n: number, timeoutMs = 20_000): Promise<Seen> => {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const hits = seen.filter((s) => s.state === state);
      if (hits.length >= n) return hits[n - 1]!;
      if (Date.now() > end) throw new Error(`no ${state} #${n} within ${timeoutMs} ms: ${seen.map((s) => s.state).join(',')}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  // The real diagnostics server over these dynos' records and decisions.
  const server = createDiagnosticsServer({
    identity: () => ({ id: 'agent-xr', hostname: 'h', address: '127.0.0.1', version: 'test', runtime: 'runc' }),
    dynos: () => dynos.map((d) => d.status()),
    capacity: async () => { throw new Error('not needed'); },
    link: () => ({ state: 'ready', connectedSince: null, reconnects: 0, lastError: null, unackedEvents: 0, droppedEvents: 0, invalidMessages: 0, lastClose: null, policyCloses: 0, spreadMs: 0, journal: null }),
    dynoLog: async () => undefined,
    slugs: async () => ({ entries: 0, bytes: 0, budgetBytes: 0, freeBytes: 0, slugs: [] }),
    decisions: (filter) => decisions.list(filter),
    exits: (dyno) => exits.list(dyno) ?? (dynos.some((d) => d.id === dyno) ? [] : undefined),
  }, TOKEN, log);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections(); }));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const diag = {
    exits: async (dyno: string): Promise<ExitRecord[]> => ((await getJson(`${url}/v1/dynos/${dyno}/exits`, auth)) as { exits: ExitRecord[] }).exits,
    events: async (dyno: string): Promise<Decision[]> => ((await getJson(`${url}/v1/events?dyno=${dyno}`, auth)) as { decisions: Decision[] }).decisions,
    url,
  };
  return { seen, make, nth, decisions, exits, diag };
}

t.test('a crash loop: each exit recorded with code 3, the restart count and the last lines; restart_scheduled backs off', async (t) => {
  const w = await world(t, { restartPolicy: { baseMs: 300, capMs: 1200, stableAfterMs: 60_000, jitter: 0 } });
  const d = w.make('loop', 'worker', 'echo "booting"; echo "connecting to the database"; echo "fatal: no DATABASE_URL" >&2; exit 3');
  d.begin();
  await w.nth('crashed', 4);
  const crashes = w.seen.filter((s) => s.state === 'crashed').slice(0, 3);
  crashes.forEach((c, i) => {
    t.match(c.status.exitSummary, { code: 3, signal: null, oomKilled: false, restartCount: i, bindMs: null }, `crash ${i + 1}: the summary rides in the crashed report`);
    // The shipper has the agent's line at once and reads the app's last lines only at the
    // cleanup: the record puts them in time order (the app may be done before the agent's
    // `up` line: a worker is up once its container runs).
    const lines = c.status.exitSummary?.lines ?? [];
    t.ok(lines.slice(-3).some((l) => /app\[worker\.1\]: fatal: no DATABASE_URL$/.test(l)), 'its last lines, the app\'s last line included');
    t.match(c.status.exitSummary?.lines.at(-1), /slipway\[worker\.1\]: Process exited with status 3$/, 'then the agent\'s line about the exit');
  });
  t.notOk(w.seen.some((s) => s.state !== 'crashed' && s.status.exitSummary), 'no other report carries a summary');

  await d.stop(1000);
  const records = await w.diag.exits(d.id);
  t.ok(records.length >= 3 && records.length <= 5, `${records.length} records through GET /v1/dynos/:id/exits`);
  const first = records[0]!;
  t.match(first, {
    dynoId: d.id, dyno: 'worker.1', app: 'xrapp', release: 'v7', cause: 'crashed', code: 3, signal: null, oomKilled: false,
    reason: { code: 'DYNO_CRASHED' }, quotaBytes: 128 * MB, bindMs: null, adopted: false,
  });
  t.same(records.filter((r) => r.cause === 'crashed').map((r) => r.restartCount).slice(0, 3), [0, 1, 2], 'the restart count grows with the loop');
  t.ok(first.lines.some((l) => /app\[worker\.1\]: booting$/.test(l)), 'the app\'s lines are in the record');
  t.ok(first.peakMemoryBytes! > 0 && first.peakMemoryBytes! < 128 * MB, `peak memory ${first.peakMemoryBytes} bytes (memory.max_usage_in_bytes)`);
  t.type(first.throttledPeriods, 'number', 'the throttle count from cpu.stat');
  t.ok(first.ranMs! >= 0 && first.ranMs! < 5000, `ran ${first.ranMs} ms`);
  t.same(await w.diag.exits('worker.1'), records, 'also found by the dyno\'s name');
  t.equal((await http('GET', `${w.diag.url}/v1/dynos/nosuch-dyno/exits`, undefined, auth)).status, 404, 'an unknown dyno: 404');

  const scheduled = (await w.diag.events('worker.1')).filter((x) => x.kind === 'restart_scheduled');
  t.same(scheduled.slice(0, 4).map((x) => [x.data!.attempt, x.data!.delayMs]), [[1, 0], [2, 300], [3, 600], [4, 1200]], 'the backoff grows: 0, 300, 600, 1200 ms');
  t.match(scheduled[2], { dynoId: d.id, dyno: 'worker.1', app: 'xrapp', message: /^restart 3 in 0\.6 s \(backoff 2\^1 x 0\.3 s\)$/, data: { baseMs: 300, capMs: 1200, reason: 'DYNO_CRASHED' } });
  t.match(scheduled[3]!.data, { capped: true });
});

t.test('a kernel OOM kill: the record says oomKilled with a peak at the limit, and the kill is a decision', async (t) => {
  const w = await world(t, { memoryMb: 16, restartPolicy: { baseMs: 60_000, capMs: 60_000, stableAfterMs: 60_000, jitter: 0 } });
  // A shell string of 50 MB: past the 32 MB limit (2 x the 16 MB quota).
  const d = w.make('oom', 'worker', 'echo allocating; x=$(head -c 52428800 /dev/zero | tr "\\0" x); echo survived; sleep 600');
  d.begin();
  const crashed = await w.nth('crashed', 1);
  t.match(crashed.status.exitSummary, { oomKilled: true });
  const [record] = w.exits.list(d.id)!;
  t.match(record, { cause: 'crashed', oomKilled: true, reason: { code: 'DYNO_OOM_KILLED' } });
  const peak = record!.peakMemoryBytes!;
  t.ok(peak > 28 * MB && peak <= 32 * MB, `peak ${(peak / MB).toFixed(1)} MB, at the 32 MB limit`);
  t.ok(record!.lines.some((l) => l.endsWith('app[worker.1]: allocating')));
  t.notOk(record!.lines.some((l) => l.endsWith('survived')));
  const kills = w.decisions.list({ dyno: d.id }).filter((x) => x.kind === 'kill');
  t.match(kills, [{ data: { cause: 'R15', by: 'kernel', code: 'DYNO_OOM_KILLED', quotaBytes: 16 * MB } }]);
  await d.stop(500);
});

t.test('a web dyno\'s records carry the time it took to bind $PORT', async (t) => {
  const w = await world(t, { restartPolicy: { baseMs: 60_000, capMs: 60_000, stableAfterMs: 60_000, jitter: 0 } });
  // httpd daemonizes and binds; the shell waits, then exits 2 (taking the container down).
  const d = w.make('web', 'web', 'sleep 0.3; httpd -p $PORT -h /app/public; echo bound; sleep 1; exit 2');
  d.begin();
  const crashed = await w.nth('crashed', 1);
  const bindMs = crashed.status.exitSummary?.bindMs;
  t.ok(typeof bindMs === 'number' && bindMs >= 300 && bindMs < 5000, `bound $PORT ${bindMs} ms after the start`);
  t.match(crashed.status.exitSummary, { code: 2 });
  const [record] = await w.diag.exits(d.id);
  t.equal(record!.bindMs, bindMs, 'the record has the same');
  t.ok(record!.ranMs! >= record!.bindMs!, 'bound before it exited');
  await d.stop(500);
});

t.test('R10 and R12: a kill is a decision with its cause and numbers; the exits say so too', async (t) => {
  const w = await world(t, { bootTimeoutMs: 1000, restartPolicy: { baseMs: 60_000, capMs: 60_000, stableAfterMs: 60_000, jitter: 0 } });
  const web = w.make('r10', 'web', 'echo not listening; sleep 600');
  const worker = w.make('r12', 'worker', 'trap "" TERM; echo ignoring TERM; while :; do sleep 1; done');
  web.begin();
  worker.begin();
  await w.nth('crashed', 1);
  const [r10] = w.decisions.list({ dyno: web.id }).filter((x) => x.kind === 'kill');
  t.match(r10, { dyno: 'web.1', message: /^R10: \$PORT \d+ not bound within 1 s of the start; SIGKILL$/, data: { cause: 'R10', code: 'DYNO_BOOT_TIMEOUT', bootTimeoutMs: 1000 } });
  t.ok((r10!.data!.waitedMs as number) >= 1000, `waited ${r10!.data!.waitedMs} ms`);
  t.match((await w.diag.exits(web.id))[0], { cause: 'crashed', signal: 'SIGKILL', reason: { code: 'DYNO_BOOT_TIMEOUT' }, bindMs: null });

  while (worker.current !== 'up') await new Promise((r) => setTimeout(r, 20));
  await worker.stop(500);
  const [r12] = w.decisions.list({ dyno: worker.id }).filter((x) => x.kind === 'kill');
  t.match(r12, { data: { cause: 'R12', code: 'DYNO_STOP_TIMEOUT', graceMs: 500, signal: 'SIGKILL' }, message: /^R12: still running 0\.5 s after SIGTERM; SIGKILL$/ });
  const stopped = (await w.diag.exits(worker.id)).at(-1)!;
  t.match(stopped, { cause: 'stopped', signal: 'SIGKILL', reason: { code: 'DYNO_STOP_TIMEOUT' } });
  t.ok(stopped.lines.some((l) => l.endsWith('app[worker.1]: ignoring TERM')));
  t.notOk(w.seen.filter((s) => s.status.id === worker.id).some((s) => s.status.exitSummary), 'a stop sends no summary (no crash)');
  t.equal((await w.diag.exits('worker.1')).length, 1, 'a stopped dyno keeps its records a while');
  await web.stop(500);
});
