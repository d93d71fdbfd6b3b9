// The in-memory store: the embedded default (the demo, a single coordinator). It keeps what a
// PostgreSQL store keeps, with the same fencing and the same answers, so that one conformance
// suite (test/integration/coordinator/store/) holds both to the interface. Nothing survives
// the process.
//
// Several MemoryStore objects may share one MemoryStoreState: they are then coordinators of one
// "database" inside one process (the tests of leadership and fencing), and the leader lock is
// exclusive among them. A store of its own (the default) has a lock nobody else wants: a single
// coordinator is elected at once.
import { SlipwayError } from '../../shared/errors.js';
import { SCHEMA_VERSION } from './migrations.js';
import type {
  CoordinatorStore, EpochHolder, LeaderLock, StoreSnapshot, StoredAgent, StoredDrain, StoredDyno, StoredFormation,
  StoredLedgerEntry, StoredRelease, StoredRoute, StoreWrite,
} from './store.js';
import { releaseOf, sameRelease } from './releases.js';

/** The "database" of in-memory stores. */
export class MemoryStoreState {
  epoch: EpochHolder = { epoch: 0, coordinatorId: '' };
  readonly formations = new Map<string, StoredFormation>();
  readonly dynos = new Map<string, StoredDyno>();
  readonly agents = new Map<string, StoredAgent>();
  readonly ledger = new Map<string, StoredLedgerEntry>();
  readonly routes = new Map<string, StoredRoute>();
  readonly releases = new Map<string, StoredRelease[]>();
  readonly drains = new Map<string, StoredDrain>();
  /** The store object holding the leader lock, if any. */
  lockHolder: MemoryLeaderLock | undefined;
}

/** Deep copies, so that nobody holds a reference into the store (as with a database). */
const copy = <T>(value: T): T => structuredClone(value);

export class MemoryStore implements CoordinatorStore {
  readonly kind = 'memory' as const;
  private readonly lock: MemoryLeaderLock;
  private closed = false;

  constructor(private readonly state = new MemoryStoreState()) {
    this.lock = new MemoryLeaderLock(state);
  }

  migrate(): Promise<number> {
    return Promise.resolve(SCHEMA_VERSION);
  }

  currentEpoch(): Promise<EpochHolder> {
    this.check();
    return Promise.resolve(copy(this.state.epoch));
  }

  claimEpoch(coordinatorId: string): Promise<number> {
    this.check();
    const epoch = this.state.epoch.epoch + 1;
    this.state.epoch = { epoch, coordinatorId, claimedAt: new Date().toISOString() };
    return Promise.resolve(epoch);
  }

  load(): Promise<StoreSnapshot> {
    this.check();
    const s = this.state;
    return Promise.resolve(copy({
      epoch: s.epoch.epoch,
      formations: [...s.formations.values()],
      dynos: [...s.dynos.values()],
      agents: [...s.agents.values()],
      ledger: [...s.ledger.values()],
      routes: [...s.routes.values()],
      drains: [...s.drains.values()],
    }));
  }

  write(epoch: number, writes: readonly StoreWrite[]): Promise<void> {
    this.check();
    if (epoch !== this.state.epoch.epoch) {
      return Promise.reject(new SlipwayError('STORE_FENCED', `write under epoch ${epoch} refused: the store's epoch is ${this.state.epoch.epoch} (coordinator ${this.state.epoch.coordinatorId} leads)`));
    }
    for (const w of writes) this.apply(copy(w));
    return Promise.resolve();
  }

  routes(): Promise<StoredRoute[]> {
    this.check();
    return Promise.resolve(copy([...this.state.routes.values()]));
  }

  releases(app: string): Promise<StoredRelease[]> {
    this.check();
    return Promise.resolve(copy(this.state.releases.get(app) ?? []));
  }

  leaderLock(): LeaderLock {
    return this.lock;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.lock.release();
    this.closed = true;
  }

  private check(): void {
    if (this.closed) throw new SlipwayError('STORE_UNAVAILABLE', 'the in-memory store is closed');
  }

  private apply(w: StoreWrite): void {
    const s = this.state;
    switch (w.kind) {
      case 'formation': {
        s.formations.set(`${w.formation.app}/${w.formation.type}`, w.formation);
        const list = s.releases.get(w.formation.app) ?? [];
        const release = releaseOf(w.formation, (list.at(-1)?.version ?? 0) + 1);
        if (!list.some((r) => sameRelease(r, release))) s.releases.set(w.formation.app, [...list, release]);
        return;
      }
      case 'formation_deleted': s.formations.delete(`${w.app}/${w.type}`); return;
      case 'dyno': s.dynos.set(w.dyno.id, w.dyno); return;
      case 'dyno_deleted': s.dynos.delete(w.id); return;
      case 'agent': s.agents.set(w.agent.identity.id, w.agent); return;
      case 'ledger': s.ledger.set(w.entry.agentId, w.entry); return;
      case 'route': s.routes.set(`${w.route.app}/${w.route.dynoId}`, w.route); return;
      case 'route_deleted': s.routes.delete(`${w.app}/${w.dynoId}`); return;
      case 'drain': s.drains.set(`${w.drain.app}/${w.drain.id}`, w.drain); return;
      case 'drain_deleted': s.drains.delete(`${w.app}/${w.id}`); return;
    }
  }
}

class MemoryLeaderLock implements LeaderLock {
  private readonly lostListeners: ((reason: string) => void)[] = [];

  constructor(private readonly state: MemoryStoreState) {}

  get held(): boolean {
    return this.state.lockHolder === this;
  }

  tryAcquire(): Promise<boolean> {
    if (this.state.lockHolder === undefined) this.state.lockHolder = this;
    return Promise.resolve(this.held);
  }

  onLost(listener: (reason: string) => void): void {
    this.lostListeners.push(listener);
  }

  /** Takes the lock away, as a database would when this holder's session ended (tests). */
  lose(reason: string): void {
    if (!this.held) return;
    this.state.lockHolder = undefined;
    for (const listener of this.lostListeners) listener(reason);
  }

  release(): Promise<void> {
    if (this.held) this.state.lockHolder = undefined;
    return Promise.resolve();
  }
}

export type { MemoryLeaderLock };
