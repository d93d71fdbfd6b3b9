// The PostgreSQL store: the coordinator's state shared by several coordinators, one of which
// leads (store.ts says what is stored and how writes are fenced; migrations.ts has the schema).
//
// Connections:
// - a small pool for state writes, loads and reads. Every pooled session runs with a statement
//   timeout and an idle-in-transaction timeout: a coordinator stopped (SIGSTOP, a frozen VM) in
//   the middle of a write holds the epoch row FOR SHARE, and the new leader's claim would wait
//   behind it for as long as the old process stays stopped;
// - one dedicated connection for the leader lock (PostgresLeaderLock): a session-level advisory
//   lock belongs to the session that took it, so it must never be a pooled connection, which
//   would hand the lock to whichever query borrows it next, or drop it on a pool recycle.
//   The session runs with idle_session_timeout = sessionTimeoutMs and the holder runs a
//   heartbeat query at a quarter of that: while the process runs, the session never idles out;
//   once the process stops (or its host drops off the network), the server ends the session
//   after sessionTimeoutMs, the lock is free, and a follower takes it.
//
// Advisory locks are per session, and LISTEN too: neither works through pgbouncer in
// transaction pooling mode (the session changes under every transaction). Point
// --database-url-file at PostgreSQL itself, or at a pgbouncer pool in session mode (README).
//
// Writes are batched: the StoreWriter hands over one batch of changes coalesced by key, and
// write() applies it in one transaction with one statement per table (jsonb_array_elements),
// so 2,000 agents' capacity reports cost a handful of statements, not 2,000 round trips.
import pg from 'pg';
import type { Logger } from '../../shared/log.js';
import { SlipwayError } from '../../shared/errors.js';
import { redactUrl } from '../../shared/log.js';
import { MIGRATIONS, SCHEMA_VERSION } from './migrations.js';
import type {
  CoordinatorStore, EpochHolder, LeaderLock, StoreSnapshot, StoredAgent, StoredDyno, StoredFormation,
  StoredDrain, StoredLedgerEntry, StoredRelease, StoredRoute, StoreWrite,
} from './store.js';

/** The advisory lock keys of slipway ('slpw' and 'slpm' as integers). */
export const LEADER_LOCK_KEY = 0x736c7077;
const MIGRATE_LOCK_KEY = 0x736c706d;

export interface PostgresStoreOptions {
  /** postgres://user@host:port/db (a password, if any, is never logged). */
  url: string;
  log: Logger;
  /** How long a stopped leader keeps the lock (idle_session_timeout of its lock session), and
   * the bound of every statement. Default 5 s. */
  sessionTimeoutMs?: number;
  /** Pool size (default 4: the leader writes one batch at a time; loads and API reads share
   * the rest). */
  poolSize?: number;
  /** Bound of a connection attempt (default 5 s). */
  connectTimeoutMs?: number;
}

interface FormationRow {
  app: string; type: string; quantity: number; size: StoredFormation['size']; command: string; spec_key: string;
  release: string | null; slug_url: string; slug_sha256: string; slug_signature: string | null; env: Record<string, string>; stack: string;
}

interface ReleaseRow {
  app: string; version: number; release: string | null; slug_url: string; slug_sha256: string; slug_signature: string | null;
  env: Record<string, string>; stack: string; created_at: Date;
}

/** What a pool or client error means for the caller: the database is not there, or refused. */
function unavailable(what: string, err: unknown): SlipwayError {
  if (err instanceof SlipwayError) return err;
  const e = err as { message?: string; code?: string };
  const code = e.code ? ` (${e.code})` : '';
  return new SlipwayError('STORE_UNAVAILABLE', `${what}: ${e.message ?? String(err)}${code}`, { cause: err });
}

export class PostgresStore implements CoordinatorStore {
  readonly kind = 'postgres' as const;
  private readonly pool: pg.Pool;
  private readonly lock: PostgresLeaderLock;
  private readonly sessionTimeoutMs: number;
  private closed = false;

  constructor(private readonly o: PostgresStoreOptions) {
    this.sessionTimeoutMs = o.sessionTimeoutMs ?? 5_000;
    const connectTimeoutMs = o.connectTimeoutMs ?? 5_000;
    this.pool = new pg.Pool({
      connectionString: o.url,
      max: o.poolSize ?? 4,
      connectionTimeoutMillis: connectTimeoutMs,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      application_name: 'slipway-coordinator',
      statement_timeout: this.sessionTimeoutMs * 2,
      query_timeout: this.sessionTimeoutMs * 3,
      idle_in_transaction_session_timeout: this.sessionTimeoutMs,
    });
    // An idle pooled connection that dies (a server restart) must not crash the process: the
    // pool drops it and the next query connects again.
    this.pool.on('error', (err) => o.log.warn({ err: err.message }, 'store: an idle database connection failed'));
    this.lock = new PostgresLeaderLock(o.url, this.sessionTimeoutMs, connectTimeoutMs, o.log);
  }

  async migrate(): Promise<number> {
    const client = await this.connect('migrate');
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATE_LOCK_KEY]);
      await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
      const r = await client.query<{ v: number }>('SELECT coalesce(max(version), 0)::int AS v FROM schema_migrations');
      const at = r.rows[0]!.v;
      if (at > SCHEMA_VERSION) {
        await client.query('ROLLBACK');
        throw new SlipwayError('STORE_SCHEMA_TOO_NEW', `the database ${redactUrl(this.o.url)} is at schema version ${at}; this coordinator knows up to ${SCHEMA_VERSION}: upgrade it (a newer coordinator migrated the database)`);
      }
      for (const m of MIGRATIONS) {
        if (m.version <= at) continue;
        await client.query(m.sql);
        await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
        this.o.log.info({ version: m.version, name: m.name }, 'store: migrated');
      }
      await client.query('COMMIT');
      return SCHEMA_VERSION;
    } catch (err) {
      if (!(err instanceof SlipwayError)) {
        broken = err as Error;
        await client.query('ROLLBACK').catch(() => undefined);
      }
      throw unavailable('migrating the store', err);
    } finally {
      client.release(broken);
    }
  }

  async currentEpoch(): Promise<EpochHolder> {
    const r = await this.query<{ epoch: string; coordinator_id: string; claimed_at: Date | null }>('reading the epoch', 'SELECT epoch, coordinator_id, claimed_at FROM coordinator_epoch');
    const row = r.rows[0]!;
    return { epoch: Number(row.epoch), coordinatorId: row.coordinator_id, ...(row.claimed_at ? { claimedAt: row.claimed_at.toISOString() } : {}) };
  }

  async claimEpoch(coordinatorId: string): Promise<number> {
    // Conflicts with every write's FOR SHARE lock of the row: waits for writes in flight under
    // the old epoch (bounded by their sessions' timeouts), and every later one sees the new epoch.
    const r = await this.query<{ epoch: string }>('claiming the epoch', 'UPDATE coordinator_epoch SET epoch = epoch + 1, coordinator_id = $1, claimed_at = now() RETURNING epoch', [coordinatorId]);
    return Number(r.rows[0]!.epoch);
  }

  async load(): Promise<StoreSnapshot> {
    const client = await this.connect('loading the store');
    let broken: Error | undefined;
    try {
      // One snapshot of everything: a write committing in between shows in all tables or none.
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const epoch = await client.query<{ epoch: string }>('SELECT epoch FROM coordinator_epoch');
      const formations = await client.query<FormationRow>(`SELECT f.app, f.type, f.quantity, f.size, f.command, f.spec_key,
          r.release, r.slug_url, r.slug_sha256, r.slug_signature, r.env, r.stack
        FROM formations f JOIN releases r ON r.app = f.app AND r.version = f.release_version ORDER BY f.app, f.type`);
      const dynos = await client.query<{ doc: StoredDyno }>('SELECT doc FROM dynos ORDER BY id');
      const agents = await client.query<{ doc: StoredAgent }>('SELECT doc FROM agents ORDER BY id');
      const ledger = await client.query<{ agent_id: string; seq_epoch: string; last_seq: string }>('SELECT agent_id, seq_epoch, last_seq FROM agent_ledger ORDER BY agent_id');
      const routes = await client.query<{ app: string; dyno_id: string; name: string; host: string; port: number }>('SELECT app, dyno_id, name, host, port FROM routes ORDER BY app, dyno_id');
      const drains = await client.query<{ app: string; id: string; url: string; token: string; created_at: Date }>('SELECT app, id, url, token, created_at FROM drains ORDER BY app, created_at, id');
      await client.query('COMMIT');
      return {
        epoch: Number(epoch.rows[0]!.epoch),
        formations: formations.rows.map(formationOf),
        dynos: dynos.rows.map((r) => r.doc),
        agents: agents.rows.map((r) => r.doc),
        ledger: ledger.rows.map((r): StoredLedgerEntry => ({ agentId: r.agent_id, seqEpoch: r.seq_epoch, lastSeq: Number(r.last_seq) })),
        routes: routes.rows.map((r): StoredRoute => ({ app: r.app, dynoId: r.dyno_id, name: r.name, host: r.host, port: r.port })),
        drains: drains.rows.map((r): StoredDrain => ({ app: r.app, id: r.id, url: r.url, token: r.token, createdAt: r.created_at.toISOString() })),
      };
    } catch (err) {
      broken = err as Error;
      await client.query('ROLLBACK').catch(() => undefined);
      throw unavailable('loading the store', err);
    } finally {
      client.release(broken);
    }
  }

  async write(epoch: number, writes: readonly StoreWrite[]): Promise<void> {
    if (writes.length === 0) return;
    const client = await this.connect('writing the store');
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const r = await client.query<{ epoch: string; coordinator_id: string }>('SELECT epoch, coordinator_id FROM coordinator_epoch FOR SHARE');
      const current = Number(r.rows[0]!.epoch);
      if (current !== epoch) {
        await client.query('ROLLBACK');
        throw new SlipwayError('STORE_FENCED', `write under epoch ${epoch} refused: the store's epoch is ${current} (coordinator ${r.rows[0]!.coordinator_id} leads)`);
      }
      await applyWrites(client, writes);
      await client.query('COMMIT');
    } catch (err) {
      if (!(err instanceof SlipwayError)) {
        broken = err as Error;
        await client.query('ROLLBACK').catch(() => undefined);
      }
      throw unavailable('writing the store', err);
    } finally {
      client.release(broken);
    }
  }

  async routes(): Promise<StoredRoute[]> {
    const r = await this.query<{ app: string; dyno_id: string; name: string; host: string; port: number }>('reading routes', 'SELECT app, dyno_id, name, host, port FROM routes ORDER BY app, dyno_id');
    return r.rows.map((row): StoredRoute => ({ app: row.app, dynoId: row.dyno_id, name: row.name, host: row.host, port: row.port }));
  }

  async releases(app: string): Promise<StoredRelease[]> {
    const r = await this.query<ReleaseRow>('reading releases', `SELECT app, version, release, slug_url, slug_sha256, slug_signature, env, stack, created_at
      FROM releases WHERE app = $1 ORDER BY version`, [app]);
    return r.rows.map((row) => {
      const release: StoredRelease = { app: row.app, version: row.version, slug: slugOf(row), env: row.env, stack: row.stack, createdAt: row.created_at.toISOString() };
      if (row.release !== null) release.release = row.release;
      return release;
    });
  }

  leaderLock(): LeaderLock {
    return this.lock;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.lock.release().catch(() => undefined);
    await this.pool.end().catch(() => undefined);
  }

  private async connect(what: string): Promise<pg.PoolClient> {
    if (this.closed) throw new SlipwayError('STORE_UNAVAILABLE', `${what}: the store is closed`);
    try {
      return await this.pool.connect();
    } catch (err) {
      throw unavailable(`${what} (connecting to ${redactUrl(this.o.url)})`, err);
    }
  }

  private async query<R extends pg.QueryResultRow>(what: string, text: string, values: unknown[] = []): Promise<pg.QueryResult<R>> {
    if (this.closed) throw new SlipwayError('STORE_UNAVAILABLE', `${what}: the store is closed`);
    try {
      return await this.pool.query<R>(text, values);
    } catch (err) {
      throw unavailable(what, err);
    }
  }
}

function slugOf(row: { slug_url: string; slug_sha256: string; slug_signature: string | null }): StoredRelease['slug'] {
  return { url: row.slug_url, sha256: row.slug_sha256, ...(row.slug_signature !== null ? { signature: row.slug_signature } : {}) };
}

function formationOf(row: FormationRow): StoredFormation {
  const f: StoredFormation = {
    app: row.app, type: row.type, quantity: row.quantity, size: row.size, command: row.command,
    slug: slugOf(row), env: row.env, stack: row.stack, specKey: row.spec_key,
  };
  if (row.release !== null) f.release = row.release;
  return f;
}

/** Applies one batch inside the caller's transaction. Formations go one by one, in order (each
 * may add a release); every other kind is an upsert or delete by key, so only the last change
 * of each key counts, and each table takes one statement for all of its keys. */
async function applyWrites(client: pg.PoolClient, writes: readonly StoreWrite[]): Promise<void> {
  const last = new Map<string, StoreWrite>();
  for (const w of writes) {
    if (w.kind === 'formation' || w.kind === 'formation_deleted') {
      await applyFormation(client, w);
      continue;
    }
    // Drains change rarely (a developer's drains:add): one statement each, in order.
    if (w.kind === 'drain') {
      await client.query(`INSERT INTO drains (app, id, url, token, created_at) VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (app, id) DO UPDATE SET url = EXCLUDED.url, token = EXCLUDED.token`, [w.drain.app, w.drain.id, w.drain.url, w.drain.token, w.drain.createdAt]);
      continue;
    }
    if (w.kind === 'drain_deleted') {
      await client.query('DELETE FROM drains WHERE app = $1 AND id = $2', [w.app, w.id]);
      continue;
    }
    const key = w.kind === 'dyno' ? `dyno:${w.dyno.id}` : w.kind === 'dyno_deleted' ? `dyno:${w.id}`
      : w.kind === 'agent' ? `agent:${w.agent.identity.id}` : w.kind === 'ledger' ? `ledger:${w.entry.agentId}`
        : w.kind === 'route' ? `route:${w.route.app}\u0000${w.route.dynoId}` : `route:${w.app}\u0000${w.dynoId}`;
    last.delete(key); // keeps the map in the order of each key's last change
    last.set(key, w);
  }
  const dynos: StoredDyno[] = [];
  const dynosDeleted: string[] = [];
  const agents: StoredAgent[] = [];
  const ledger: StoredLedgerEntry[] = [];
  const routes: StoredRoute[] = [];
  const routesDeleted: { app: string; dynoId: string }[] = [];
  for (const w of last.values()) {
    switch (w.kind) {
      case 'dyno': dynos.push(w.dyno); break;
      case 'dyno_deleted': dynosDeleted.push(w.id); break;
      case 'agent': agents.push(w.agent); break;
      case 'ledger': ledger.push(w.entry); break;
      case 'route': routes.push(w.route); break;
      case 'route_deleted': routesDeleted.push({ app: w.app, dynoId: w.dynoId }); break;
      default: break;
    }
  }
  if (dynos.length > 0) {
    await client.query(`INSERT INTO dynos (id, app, type, agent_id, desired, state, doc)
      SELECT d->>'id', d->>'app', d->>'type', d->>'agentId', d->>'desired', d->>'state', d FROM jsonb_array_elements($1::jsonb) AS d
      ON CONFLICT (id) DO UPDATE SET app = EXCLUDED.app, type = EXCLUDED.type, agent_id = EXCLUDED.agent_id,
        desired = EXCLUDED.desired, state = EXCLUDED.state, doc = EXCLUDED.doc`, [JSON.stringify(dynos)]);
  }
  if (dynosDeleted.length > 0) await client.query('DELETE FROM dynos WHERE id = ANY($1::text[])', [dynosDeleted]);
  if (agents.length > 0) {
    await client.query(`INSERT INTO agents (id, doc, seen_at)
      SELECT d->'identity'->>'id', d, (d->>'seenAt')::timestamptz FROM jsonb_array_elements($1::jsonb) AS d
      ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc, seen_at = EXCLUDED.seen_at`, [JSON.stringify(agents)]);
  }
  if (ledger.length > 0) {
    await client.query(`INSERT INTO agent_ledger (agent_id, seq_epoch, last_seq)
      SELECT d->>'agentId', d->>'seqEpoch', (d->>'lastSeq')::bigint FROM jsonb_array_elements($1::jsonb) AS d
      ON CONFLICT (agent_id) DO UPDATE SET seq_epoch = EXCLUDED.seq_epoch, last_seq = EXCLUDED.last_seq`, [JSON.stringify(ledger)]);
  }
  if (routes.length > 0) {
    await client.query(`INSERT INTO routes (app, dyno_id, name, host, port)
      SELECT d->>'app', d->>'dynoId', d->>'name', d->>'host', (d->>'port')::int FROM jsonb_array_elements($1::jsonb) AS d
      ON CONFLICT (app, dyno_id) DO UPDATE SET name = EXCLUDED.name, host = EXCLUDED.host, port = EXCLUDED.port`, [JSON.stringify(routes)]);
  }
  if (routesDeleted.length > 0) {
    await client.query(`DELETE FROM routes r USING jsonb_array_elements($1::jsonb) AS d
      WHERE r.app = d->>'app' AND r.dyno_id = d->>'dynoId'`, [JSON.stringify(routesDeleted)]);
  }
}

async function applyFormation(client: pg.PoolClient, w: Extract<StoreWrite, { kind: 'formation' | 'formation_deleted' }>): Promise<void> {
  if (w.kind === 'formation_deleted') {
    await client.query('DELETE FROM formations WHERE app = $1 AND type = $2', [w.app, w.type]);
    return;
  }
  const f = w.formation;
  await client.query('INSERT INTO apps (name) VALUES ($1) ON CONFLICT DO NOTHING', [f.app]);
  const release = [f.app, f.slug.url, f.slug.sha256, f.slug.signature ?? null, JSON.stringify(f.env), f.stack, f.release ?? null];
  // jsonb equality ignores key order: the same env is the same release however it was written.
  const found = await client.query<{ version: number }>(`SELECT version FROM releases WHERE app = $1 AND slug_url = $2 AND slug_sha256 = $3
      AND slug_signature IS NOT DISTINCT FROM $4 AND env = $5::jsonb AND stack = $6 AND release IS NOT DISTINCT FROM $7
    ORDER BY version DESC LIMIT 1`, release);
  let version = found.rows[0]?.version;
  if (version === undefined) {
    const added = await client.query<{ version: number }>(`INSERT INTO releases (app, version, slug_url, slug_sha256, slug_signature, env, stack, release)
      SELECT $1, coalesce(max(version), 0) + 1, $2, $3, $4, $5::jsonb, $6, $7 FROM releases WHERE app = $1 RETURNING version`, release);
    version = added.rows[0]!.version;
  }
  await client.query(`INSERT INTO formations (app, type, quantity, size, command, release_version, spec_key)
      VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7)
    ON CONFLICT (app, type) DO UPDATE SET quantity = EXCLUDED.quantity, size = EXCLUDED.size, command = EXCLUDED.command,
      release_version = EXCLUDED.release_version, spec_key = EXCLUDED.spec_key`,
  [f.app, f.type, f.quantity, JSON.stringify(f.size), f.command, version, f.specKey]);
}

/** The leader lock: a session advisory lock on a connection of its own (see the header). */
export class PostgresLeaderLock implements LeaderLock {
  private client: pg.Client | undefined;
  private holding = false;
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly lostListeners: ((reason: string) => void)[] = [];

  constructor(
    private readonly url: string,
    private readonly sessionTimeoutMs: number,
    private readonly connectTimeoutMs: number,
    private readonly log: Logger,
  ) {}

  get held(): boolean {
    return this.holding;
  }

  onLost(listener: (reason: string) => void): void {
    this.lostListeners.push(listener);
  }

  async tryAcquire(): Promise<boolean> {
    if (this.holding) return true;
    try {
      const client = this.client ?? (await this.open());
      const r = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [LEADER_LOCK_KEY]);
      if (r.rows[0]!.ok && this.client === client) {
        this.holding = true;
        this.startHeartbeat(client);
      }
      return this.holding;
    } catch (err) {
      this.drop();
      throw unavailable('taking the leader lock', err);
    }
  }

  async release(): Promise<void> {
    const client = this.client;
    const wasHolding = this.holding;
    this.holding = false;
    this.stopHeartbeat();
    this.client = undefined;
    if (!client) return;
    if (wasHolding) await client.query('SELECT pg_advisory_unlock($1)', [LEADER_LOCK_KEY]).catch(() => undefined);
    await client.end().catch(() => undefined);
  }

  private async open(): Promise<pg.Client> {
    const client = new pg.Client({
      connectionString: this.url,
      connectionTimeoutMillis: this.connectTimeoutMs,
      keepAlive: true,
      application_name: 'slipway-coordinator-leader-lock',
      // A heartbeat that does not come back in time is a lost session: the server may have
      // ended it already, and a leader must not go on believing it leads.
      query_timeout: this.sessionTimeoutMs,
    });
    client.on('error', (err) => this.lose(`lock connection failed: ${err.message}`, client));
    client.on('end', () => this.lose('lock connection ended', client));
    await client.connect();
    await client.query(`SET idle_session_timeout = ${Math.max(1, Math.round(this.sessionTimeoutMs))}`);
    this.client = client;
    return client;
  }

  private startHeartbeat(client: pg.Client): void {
    this.stopHeartbeat();
    const every = Math.max(100, Math.floor(this.sessionTimeoutMs / 4));
    this.heartbeat = setInterval(() => {
      client.query('SELECT 1').catch((err: Error) => this.lose(`heartbeat failed: ${err.message}`, client));
    }, every);
    this.heartbeat.unref();
  }

  private stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  /** The session of `client` is gone (or not to be trusted): the lock with it. */
  private lose(reason: string, client: pg.Client): void {
    if (this.client !== client) return;
    const wasHolding = this.holding;
    this.drop();
    if (!wasHolding) return;
    this.log.warn({ reason }, 'store: leader lock lost');
    for (const listener of this.lostListeners) listener(reason);
  }

  private drop(): void {
    const client = this.client;
    this.client = undefined;
    this.holding = false;
    this.stopHeartbeat();
    if (client) void client.end().catch(() => undefined);
  }
}
