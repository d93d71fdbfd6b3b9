// The store conformance suite: what every CoordinatorStore (coordinator/store/store.ts) must do,
// run against the in-memory store and against a real PostgreSQL by test/integration/coordinator/store/.
// `open` makes store objects over one shared database: two of them are two coordinators.
import type { Test } from 'tap';
import { SCHEMA_VERSION } from '../../coordinator/store/migrations.js';
import type { CoordinatorStore, StoredAgent, StoredDyno, StoredFormation, StoreWrite } from '../../coordinator/store/store.js';

export type OpenStores = (t: Test) => Promise<() => CoordinatorStore>;

export function formation(app: string, over: Partial<StoredFormation> = {}): StoredFormation {
  return {
    app, type: 'web', quantity: 2, size: { name: 'standard-1x', memoryMb: 512, cpuShares: 1024, pidsLimit: 512 }, command: 'bin/web',
    slug: { url: 's3://slugs/a.tgz', sha256: 'a'.repeat(64) }, env: { A: '1', B: '2' }, stack: 'heroku-24', specKey: 'k-a', ...over,
  };
}

export function dyno(id: string, over: Partial<StoredDyno> = {}): StoredDyno {
  return {
    id, app: 'shop', type: 'web', name: 'web.1', index: 1, agentId: 'agent-a', state: 'up', since: '2026-12-03T00:00:00.000Z',
    memoryMb: 512, desired: 'run', specKey: 'k-a', endpoint: { host: '10.0.0.5', port: 5000 }, ...over,
  };
}

export function agent(id: string, zone?: string): StoredAgent {
  return {
    identity: { id, hostname: id, address: '10.0.0.5', version: '0.1.0', runtime: 'runc', ...(zone ? { zone } : {}) },
    capacity: {
      memory: { totalBytes: 8 * 2 ** 30, reservedBytes: 2 ** 30, allocatableBytes: 7 * 2 ** 30, committedBytes: 2 ** 30, usedBytes: 2 ** 29 },
      cpu: { cores: 2, load1: 0.5 }, dynoCount: 1,
      slugCache: { entries: 1, bytes: 1000, budgetBytes: 2 ** 30, freeBytes: 2 ** 33, slugs: [{ sha256: 'a'.repeat(64), bytes: 1000 }] },
      accepting: true,
    },
    seenAt: '2026-12-03T00:00:01.000Z',
  };
}

async function rejectsCode(t: Test, p: Promise<unknown>, code: string, what: string): Promise<void> {
  try {
    await p;
    t.fail(`${what}: resolved, expected ${code}`);
  } catch (err) {
    t.equal((err as { code?: string }).code, code, what);
  }
}

export function storeConformance(t: Test, open: OpenStores): void {
  t.test('migrate is idempotent and the epoch starts at 0', async (t) => {
    const make = await open(t);
    const a = make();
    t.equal(await a.migrate(), SCHEMA_VERSION, 'at the schema version');
    t.equal(await a.migrate(), SCHEMA_VERSION, 'again: nothing to do');
    t.equal(await make().migrate(), SCHEMA_VERSION, 'a second coordinator migrates the same store');
    t.match(await a.currentEpoch(), { epoch: 0, coordinatorId: '' }, 'nobody claimed an epoch yet');
  });

  t.test('every kind of state survives into another coordinator\'s load()', async (t) => {
    const make = await open(t);
    const a = make();
    await a.migrate();
    const epoch = await a.claimEpoch('c1');
    t.equal(epoch, 1, 'the first epoch is 1');
    const writes: StoreWrite[] = [
      { kind: 'formation', formation: formation('shop', { release: 'v7', slug: { url: 's3://slugs/a.tgz', sha256: 'a'.repeat(64), signature: 'untrusted comment: x\nRWQ' } }) },
      { kind: 'formation', formation: formation('blog', { type: 'worker', quantity: 1 }) },
      { kind: 'dyno', dyno: dyno('d1', { exit: { code: 1, signal: null } }) },
      { kind: 'dyno', dyno: dyno('d2', { name: 'web.2', index: 2, desired: 'stop', state: 'stopping' }) },
      { kind: 'agent', agent: agent('agent-a', 'eu-west-1a') },
      { kind: 'ledger', entry: { agentId: 'agent-a', seqEpoch: 'e-1', lastSeq: 41 } },
      { kind: 'route', route: { app: 'shop', dynoId: 'd1', name: 'web.1', host: '10.0.0.5', port: 5000 } },
      { kind: 'drain', drain: { app: 'shop', id: 'dr1', url: 'syslog+tls://logs.example:6514', token: 'd.1', createdAt: '2026-12-03T10:00:00.000Z' } },
      { kind: 'drain', drain: { app: 'shop', id: 'dr2', url: 'https://u:p@logs.example/x', token: 'd.2', createdAt: '2026-12-03T10:00:01.000Z' } },
    ];
    await a.write(epoch, writes);
    const b = make();
    await b.migrate();
    const s = await b.load();
    t.equal(s.epoch, 1, 'the snapshot says which epoch it was read under');
    t.same(s.formations.map((f) => `${f.app}/${f.type}`).sort(), ['blog/worker', 'shop/web'], 'formations');
    t.same(s.formations.find((f) => f.app === 'shop'), writes[0]!.kind === 'formation' ? writes[0].formation : undefined, 'a formation with its release, signature and env, as written');
    t.same(s.dynos.find((d) => d.id === 'd1'), dyno('d1', { exit: { code: 1, signal: null } }), 'a dyno with its exit');
    t.match(s.dynos.find((d) => d.id === 'd2'), { desired: 'stop', state: 'stopping' }, 'an unwanted dyno');
    t.same(s.agents, [agent('agent-a', 'eu-west-1a')], 'the agent\'s identity and capacity');
    t.same(s.ledger, [{ agentId: 'agent-a', seqEpoch: 'e-1', lastSeq: 41 }], 'the event ledger');
    t.same(s.routes, [{ app: 'shop', dynoId: 'd1', name: 'web.1', host: '10.0.0.5', port: 5000 }], 'the route');
    t.same(await b.routes(), s.routes, 'routes() reads the route table alone');
    t.same(s.drains.map((d) => [d.id, d.url, d.token, d.createdAt]), [
      ['dr1', 'syslog+tls://logs.example:6514', 'd.1', '2026-12-03T10:00:00.000Z'],
      ['dr2', 'https://u:p@logs.example/x', 'd.2', '2026-12-03T10:00:01.000Z'],
    ], "an app's drains, in the order they were added");

    await a.write(epoch, [
      { kind: 'dyno_deleted', id: 'd2' },
      { kind: 'route_deleted', app: 'shop', dynoId: 'd1' },
      { kind: 'formation_deleted', app: 'blog', type: 'worker' },
      { kind: 'ledger', entry: { agentId: 'agent-a', seqEpoch: 'e-1', lastSeq: 42 } },
      { kind: 'drain_deleted', app: 'shop', id: 'dr1' },
    ]);
    const after = await b.load();
    t.same(after.drains.map((d) => d.id), ['dr2'], 'the deleted drain is gone');
    t.same(after.dynos.map((d) => d.id), ['d1'], 'the deleted dyno is gone');
    t.same(after.routes, [], 'the deleted route is gone');
    t.same(after.formations.map((f) => f.app), ['shop'], 'the deleted formation is gone');
    t.equal(after.ledger[0]!.lastSeq, 42, 'the ledger moved on');
  });

  t.test('within a batch the last change of a key wins', async (t) => {
    const make = await open(t);
    const a = make();
    await a.migrate();
    const epoch = await a.claimEpoch('c1');
    await a.write(epoch, [
      { kind: 'dyno', dyno: dyno('d1', { state: 'starting' }) },
      { kind: 'dyno', dyno: dyno('d1', { state: 'up' }) },
      { kind: 'dyno', dyno: dyno('d2') },
      { kind: 'dyno_deleted', id: 'd2' },
      { kind: 'dyno_deleted', id: 'd3' },
      { kind: 'dyno', dyno: dyno('d3', { state: 'crashed' }) },
    ]);
    const s = await a.load();
    t.same(s.dynos.map((d) => `${d.id}:${d.state}`).sort(), ['d1:up', 'd3:crashed'], 'put-put, put-delete and delete-put, each in order');
  });

  t.test('a write under an old epoch is fenced and applies nothing', async (t) => {
    const make = await open(t);
    const old = make();
    const next = make();
    await old.migrate();
    const e1 = await old.claimEpoch('c1');
    await old.write(e1, [{ kind: 'dyno', dyno: dyno('d1') }]);
    const e2 = await next.claimEpoch('c2');
    t.equal(e2, e1 + 1, 'a new leader bumps the epoch');
    t.match(await old.currentEpoch(), { epoch: e2, coordinatorId: 'c2' }, 'both see who leads');
    await rejectsCode(t, old.write(e1, [{ kind: 'dyno_deleted', id: 'd1' }, { kind: 'dyno', dyno: dyno('d9') }]), 'STORE_FENCED', 'the deposed leader\'s write');
    const s = await next.load();
    t.same(s.dynos.map((d) => d.id), ['d1'], 'nothing of the fenced batch landed');
    await next.write(e2, [{ kind: 'dyno', dyno: dyno('d2') }]);
    t.same((await old.load()).dynos.map((d) => d.id).sort(), ['d1', 'd2'], 'the new leader writes');
  });

  t.test('releases: one per distinct slug, env, stack and name, numbered per app', async (t) => {
    const make = await open(t);
    const a = make();
    await a.migrate();
    const e = await a.claimEpoch('c1');
    const v1 = formation('shop');
    const v2 = formation('shop', { slug: { url: 's3://slugs/b.tgz', sha256: 'b'.repeat(64) }, specKey: 'k-b' });
    await a.write(e, [{ kind: 'formation', formation: v1 }]);
    await a.write(e, [{ kind: 'formation', formation: { ...v1, quantity: 5 } }]);
    await a.write(e, [{ kind: 'formation', formation: { ...v1, env: { B: '2', A: '1' } } }]);
    await a.write(e, [{ kind: 'formation', formation: v2 }]);
    await a.write(e, [{ kind: 'formation', formation: { ...v2, type: 'worker' } }]);
    await a.write(e, [{ kind: 'formation', formation: v1 }]);
    await a.write(e, [{ kind: 'formation', formation: formation('blog') }]);
    const shop = await a.releases('shop');
    t.same(shop.map((r) => [r.version, r.slug.url]), [[1, 's3://slugs/a.tgz'], [2, 's3://slugs/b.tgz']], 'a scale, a reordered env and a second type add no release; a rollback reuses the old one');
    t.same(shop[0]!.env, { A: '1', B: '2' }, 'the release keeps the env');
    t.ok(!Number.isNaN(Date.parse(shop[0]!.createdAt)), 'with the time it was first seen');
    t.same((await a.releases('blog')).map((r) => r.version), [1], 'numbered per app');
    t.same(await a.releases('nope'), [], 'an unknown app has none');
    const s = await a.load();
    t.same(s.formations.find((f) => f.app === 'shop' && f.type === 'web'), v1, 'the formation runs what it was last given');
  });

  t.test('the leader lock is exclusive among coordinators and passes on release', async (t) => {
    const make = await open(t);
    const a = make();
    const b = make();
    await a.migrate();
    const la = a.leaderLock();
    const lb = b.leaderLock();
    t.equal(await la.tryAcquire(), true, 'the first coordinator takes it');
    t.equal(await la.tryAcquire(), true, 'taking it again while holding it is fine');
    t.equal(await lb.tryAcquire(), false, 'the second does not get it');
    t.equal(la.held && !lb.held, true, 'held says who holds it');
    await la.release();
    t.equal(la.held, false, 'released');
    t.equal(await lb.tryAcquire(), true, 'the second takes it after the release');
    await lb.release();
  });
}
