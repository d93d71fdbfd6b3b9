// The store conformance suite (test/helpers/store-conformance.ts) against a real PostgreSQL 15 (Debian's package,
// a private cluster: test/helpers/postgres.ts), and what only a database does: a schema from a
// newer coordinator, coordinators migrating at once, an unreachable server, and the leader
// lock's session ending under it (pg_terminate_backend, as the server does once a stopped
// leader's session idles out).
import t from 'tap';
import { createRootLogger } from '../../../../shared/log.js';
import { PostgresStore } from '../../../../coordinator/store/postgres-store.js';
import { SCHEMA_VERSION } from '../../../../coordinator/store/migrations.js';
import { testDatabase, withClient } from '../../../helpers/postgres.js';
import { dyno, storeConformance } from '../../../helpers/store-conformance.js';

const log = createRootLogger({ name: 'postgres-store-test', level: 'silent' });

function opener(t: { teardown(fn: () => unknown): void }, url: string, sessionTimeoutMs = 5_000): () => PostgresStore {
  return () => {
    const store = new PostgresStore({ url, log, sessionTimeoutMs });
    t.teardown(() => store.close());
    return store;
  };
}

storeConformance(t, async (t) => opener(t, await testDatabase(t)));

t.test('coordinators that start together migrate once', async (t) => {
  const make = opener(t, await testDatabase(t));
  const stores = [make(), make(), make(), make()];
  t.same(await Promise.all(stores.map((s) => s.migrate())), stores.map(() => SCHEMA_VERSION), 'each ends at the schema version');
  const url = await testDatabase(t);
  const again = opener(t, url);
  await Promise.all([again().migrate(), again().migrate()]);
  const rows = await withClient(url, (c) => c.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version'));
  t.same(rows.rows.map((r) => r.version), Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1), 'each migration recorded once');
});

t.test('a database migrated by a newer coordinator is refused', async (t) => {
  const url = await testDatabase(t);
  const make = opener(t, url);
  await make().migrate();
  await withClient(url, (c) => c.query("INSERT INTO schema_migrations (version, name) VALUES ($1, 'from the future')", [SCHEMA_VERSION + 1]));
  try {
    await make().migrate();
    t.fail('migrated a newer schema');
  } catch (err) {
    t.equal((err as { code?: string }).code, 'STORE_SCHEMA_TOO_NEW', 'STORE_SCHEMA_TOO_NEW');
    t.match((err as Error).message, `schema version ${SCHEMA_VERSION + 1}`, 'naming the version found');
  }
});

t.test('an unreachable database is STORE_UNAVAILABLE within the connect bound', async (t) => {
  // A loopback port nothing listens on: the connection is refused at once.
  const store = new PostgresStore({ url: 'postgres://slipway@127.0.0.1:1/none', log, connectTimeoutMs: 2_000 });
  t.teardown(() => store.close());
  const started = Date.now();
  for (const [what, p] of [['migrate', store.migrate()], ['load', store.load()], ['write', store.write(1, [{ kind: 'dyno', dyno: dyno('d1') }])], ['lock', store.leaderLock().tryAcquire()]] as const) {
    try {
      await p;
      t.fail(`${what} resolved`);
    } catch (err) {
      t.equal((err as { code?: string }).code, 'STORE_UNAVAILABLE', `${what}: STORE_UNAVAILABLE`);
    }
  }
  t.ok(Date.now() - started < 10_000, 'answered within the bounds');
});

t.test('the leader lock is lost with its session, and a follower takes it', async (t) => {
  const url = await testDatabase(t);
  const make = opener(t, url, 2_000);
  const leader = make();
  const follower = make();
  await leader.migrate();
  const lock = leader.leaderLock();
  const lost = new Promise<string>((resolve) => lock.onLost(resolve));
  t.equal(await lock.tryAcquire(), true, 'the leader holds the lock');
  t.equal(await follower.leaderLock().tryAcquire(), false, 'the follower does not');
  // The lock's own session, found by its application_name: never a pooled one.
  const sessions = await withClient(url, (c) => c.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE application_name = 'slipway-coordinator-leader-lock' AND datname = current_database()"));
  const locks = await withClient(url, (c) => c.query<{ pid: number }>("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"));
  t.ok(sessions.rows.length >= 1, 'the lock sessions are named');
  t.ok(locks.rows.some((l) => sessions.rows.some((s) => s.pid === l.pid)), 'the advisory lock is held by a lock session');
  const holder = locks.rows.find((l) => sessions.rows.some((s) => s.pid === l.pid))!.pid;
  await withClient(url, (c) => c.query('SELECT pg_terminate_backend($1)', [holder]));
  const reason = await Promise.race([lost, new Promise<string>((_, reject) => setTimeout(() => reject(new Error('onLost not called within 10 s')), 10_000))]);
  t.match(reason, /lock connection|heartbeat/, `onLost: ${reason}`);
  t.equal(lock.held, false, 'held is false once lost');
  t.equal(await follower.leaderLock().tryAcquire(), true, 'the follower takes the lock');
  t.equal(await lock.tryAcquire(), false, 'the old leader cannot take it back');
});
