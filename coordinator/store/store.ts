// The coordinator's durable state, behind one interface: the in-memory store (memory-store.ts,
// the embedded default for the demo and single-process runs) and PostgreSQL
// (postgres-store.ts, for several coordinators with one leader). test/helpers/
// store-conformance.ts runs the same cases against both.
//
// The leader keeps its working set in memory (DynoTable, AgentRegistry, FormationService, the
// SDK's SeqLedger) and writes every change through to the store; a new leader load()s it.
// Every write is fenced by the writer's epoch: a write carries the epoch its leader claimed,
// and once another coordinator claimed a higher one, write() fails with STORE_FENCED and
// applies nothing. Claiming an epoch waits for writes in flight under the old one (PostgreSQL:
// the claim's UPDATE of the epoch row conflicts with every write's FOR SHARE lock of it), so
// no write of an old leader lands after a new leader loaded the state.
//
// Leadership itself is the LeaderLock's (PostgreSQL: an advisory lock held by a session on a
// dedicated connection, never a pooled one): only the lock's holder may claim an epoch.
import type { AgentIdentity, Capacity, DynoStateName, Endpoint, ExitStatus, HostNotice, WireError } from '../../shared/protocol.js';
import type { FormationRequest } from '../formation-body.js';

/** A formation of one app/process type with the release it runs (slug, env, stack): the
 * formation request as the API accepted it, with its fingerprint. */
export interface StoredFormation extends FormationRequest {
  /** Fingerprint of command, size, slug, env, stack and release (formation-body.ts). */
  specKey: string;
}

/** A release as the store keeps it: what formations ran, newest last (StoredFormation's slug,
 * env, stack and release name; one row per distinct combination of an app). */
export interface StoredRelease {
  app: string;
  /** The store's own number, increasing per app. */
  version: number;
  release?: string;
  slug: { url: string; sha256: string; signature?: string };
  env: Record<string, string>;
  stack: string;
  createdAt: string;
}

/** A dyno: where it was placed, its last reported state, and whether it is wanted (the
 * DynoTable's record, coordinator/dyno-table.ts). */
export interface StoredDyno {
  id: string;
  app: string;
  type: string;
  name: string;
  index: number;
  agentId: string;
  state: DynoStateName;
  since: string;
  memoryMb: number;
  endpoint?: Endpoint;
  exit?: ExitStatus;
  reason?: WireError;
  desired: 'run' | 'stop';
  /** Fingerprint of the formation spec it was started from; undefined when adopted from a
   * hello after a coordinator restart (the agent never echoes command or env). */
  specKey?: string;
  /** The `since` of the last state the agent reported, in ms; events older than it are stale
   * (an event resent after a reconnect may predate the hello's snapshot). */
  agentSinceMs?: number;
}

/** An agent's last hello and capacity report. */
export interface StoredAgent {
  identity: AgentIdentity;
  capacity: Capacity;
  interruption?: HostNotice;
  rebalance?: HostNotice;
  /** When this record was last written (ISO 8601). */
  seenAt: string;
}

/** The de-duplication ledger of one agent's events (the SDK's SeqLedger): survives failover. */
export interface StoredLedgerEntry {
  agentId: string;
  seqEpoch: string;
  lastSeq: number;
}

export interface StoredRoute {
  app: string;
  dynoId: string;
  name: string;
  host: string;
  port: number;
}

/** A log drain of an app (coordinator/drains/): where its lines go, and the token that names it
 * to the receiver (Logplex-Drain-Token). The URL may hold a password: never logged whole. */
export interface StoredDrain {
  app: string;
  id: string;
  url: string;
  token: string;
  createdAt: string;
}

export interface StoreSnapshot {
  /** The epoch current when the snapshot was read. */
  epoch: number;
  formations: StoredFormation[];
  dynos: StoredDyno[];
  agents: StoredAgent[];
  ledger: StoredLedgerEntry[];
  routes: StoredRoute[];
  drains: StoredDrain[];
}

/** One change; write() applies a batch of them in order, atomically. Puts are upserts by key
 * (formation: app+type; dyno: id; agent: identity.id; ledger: agentId; route: app+dynoId;
 * drain: app+id). */
export type StoreWrite =
  | { kind: 'formation'; formation: StoredFormation }
  | { kind: 'formation_deleted'; app: string; type: string }
  | { kind: 'dyno'; dyno: StoredDyno }
  | { kind: 'dyno_deleted'; id: string }
  | { kind: 'agent'; agent: StoredAgent }
  | { kind: 'ledger'; entry: StoredLedgerEntry }
  | { kind: 'route'; route: StoredRoute }
  | { kind: 'route_deleted'; app: string; dynoId: string }
  | { kind: 'drain'; drain: StoredDrain }
  | { kind: 'drain_deleted'; app: string; id: string };

export interface EpochHolder {
  epoch: number;
  /** The coordinator that claimed it (its --coordinator-id); '' before any claim. */
  coordinatorId: string;
  claimedAt?: string;
}

export interface CoordinatorStore {
  readonly kind: 'memory' | 'postgres';
  /** Brings the schema to the version this code knows; returns it. STORE_SCHEMA_TOO_NEW when
   * the database is at a later version (a newer coordinator migrated it). Idempotent, and safe
   * when several coordinators run it at once. */
  migrate(): Promise<number>;
  /** The current epoch and who claimed it. */
  currentEpoch(): Promise<EpochHolder>;
  /** Bumps the epoch and names its holder; returns the new epoch. Call only while holding the
   * LeaderLock. Waits for writes in flight under the old epoch. */
  claimEpoch(coordinatorId: string): Promise<number>;
  /** Everything stored. */
  load(): Promise<StoreSnapshot>;
  /** Applies `writes` in order in one transaction when `epoch` is still the current one;
   * otherwise throws STORE_FENCED and applies nothing. STORE_UNAVAILABLE when the database
   * cannot be reached (nothing or everything was applied: a retry of the same batch is safe,
   * every write being an upsert or a delete by key). */
  write(epoch: number, writes: readonly StoreWrite[]): Promise<void>;
  /** The stored route table (a follower's router refreshes from it). */
  routes(): Promise<StoredRoute[]>;
  /** An app's releases, oldest first. */
  releases(app: string): Promise<StoredRelease[]>;
  /** The leadership lock of this store (one per store object). */
  leaderLock(): LeaderLock;
  close(): Promise<void>;
}

/** Leadership among the coordinators that share a store. */
export interface LeaderLock {
  /** Tries once to take the lock; true when this process holds it (also when it held it
   * already). STORE_UNAVAILABLE when the database cannot be reached. */
  tryAcquire(): Promise<boolean>;
  /** Whether the lock is held now, as far as this process knows. */
  readonly held: boolean;
  /** Called once when a held lock is lost (its connection died or was terminated, e.g. by
   * the server's idle_session_timeout while this process was stopped). */
  onLost(listener: (reason: string) => void): void;
  /** Gives the lock up (a clean shutdown); a no-op when not held. */
  release(): Promise<void>;
}
