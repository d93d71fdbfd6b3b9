// The coordinator's view of every dyno: where it was placed, its last known state, and
// whether the coordinator wants it running. The DynoTable is the only writer of these
// records and of the route table (every state it records goes through applyDynoState), so
// the view and the routes cannot disagree.
//
// Known state comes from the agents (hello snapshots and dyno_state events); desired state
// ('run' or 'stop') from FormationService. A record that is down and no longer wanted is
// deleted: the dyno is gone and nothing refers to it any more.
import type { DynoSpec, DynoStateName, DynoStatus, Endpoint, ExitStatus, WireError } from '../shared/protocol.js';
import type { RouteTable } from './route-table.js';
import type { StoredDyno, StoreWrite } from './store/store.js';
import { dynoIndex } from './formation-plan.js';

export type DesiredState = StoredDyno['desired'];

/** A dyno as the table keeps it: the record the store keeps (store.ts, StoredDyno), one type
 * so that the two cannot drift apart. */
export type DynoRecord = StoredDyno;

/** What GET /dynos shows of a dyno. */
export interface DynoView {
  id: string;
  app: string;
  type: string;
  name: string;
  agentId: string;
  state: DynoStateName;
  endpoint?: Endpoint;
  exit?: ExitStatus;
  reason?: WireError;
  since: string;
}

export class DynoTable {
  private readonly records = new Map<string, DynoRecord>();

  constructor(
    private readonly routes: RouteTable,
    /** The reachable address of an agent, for endpoints that name no host. */
    private readonly agentAddress: (agentId: string) => string | undefined,
    /** Where every change of a record (and of its route) is written through (the leader's
     * StoreWriter); none: in memory only. */
    private readonly sink: (write: StoreWrite) => void = () => undefined,
  ) {}

  /** A new leadership term starts from the stored dynos: records and routes become those
   * (routes of dynos not stored leave the table). Not written back. */
  restore(stored: readonly StoredDyno[]): void {
    this.records.clear();
    for (const d of stored) this.records.set(d.id, structuredClone(d));
    this.routes.retain((route) => this.records.get(route.dynoId)?.state === 'up');
    for (const record of this.records.values()) this.routes.applyDynoState(record, this.agentAddress(record.agentId));
  }

  get(id: string): DynoRecord | undefined {
    return this.records.get(id);
  }

  has(id: string): boolean {
    return this.records.has(id);
  }

  /** Records a dyno the coordinator is about to start (state 'starting', wanted running). */
  addPlaced(spec: DynoSpec, agentId: string, specKey: string, now: Date = new Date()): DynoRecord {
    const record: DynoRecord = {
      id: spec.id, app: spec.app, type: spec.type, name: spec.name, index: dynoIndex(spec.name), agentId,
      state: 'starting', since: now.toISOString(), memoryMb: spec.size.memoryMb, desired: 'run', specKey,
    };
    this.records.set(record.id, record);
    this.sink({ kind: 'dyno', dyno: { ...record } });
    return record;
  }

  /** Forgets a dyno that never started (its start_dyno was refused). */
  forget(id: string): void {
    const record = this.records.get(id);
    if (!record) return;
    if (this.routes.remove(record.app, id)) this.sink({ kind: 'route_deleted', app: record.app, dynoId: id });
    this.records.delete(id);
    this.sink({ kind: 'dyno_deleted', id });
  }

  /** Marks a dyno as no longer wanted; its route leaves the table now (the router drains it
   * before the coordinator sends SIGTERM). */
  markUnwanted(id: string): DynoRecord | undefined {
    const record = this.records.get(id);
    if (!record) return undefined;
    record.desired = 'stop';
    this.settle(record);
    return record;
  }

  /** Applies a state the agent reported. Snapshots (hello) always apply; an event whose
   * `since` is older than the last reported one is stale and ignored. Returns whether it applied. */
  applyStatus(agentId: string, status: DynoStatus, origin: 'hello' | 'event' | 'result'): boolean {
    const sinceMs = Date.parse(status.since);
    let record = this.records.get(status.id);
    if (!record) {
      // A dyno the coordinator does not know: started before a coordinator restart. Adopt
      // it unless it is already gone.
      if (status.state === 'down') return false;
      record = {
        id: status.id, app: status.app, type: status.type, name: status.name, index: dynoIndex(status.name),
        agentId, state: status.state, since: status.since, memoryMb: status.memoryMb, desired: 'run',
      };
      this.records.set(record.id, record);
    } else if (origin !== 'hello' && record.agentSinceMs !== undefined && sinceMs < record.agentSinceMs) {
      return false;
    }
    record.agentId = agentId;
    record.state = status.state;
    record.since = status.since;
    record.agentSinceMs = sinceMs;
    record.memoryMb = status.memoryMb;
    setOrDelete(record, 'endpoint', status.endpoint);
    setOrDelete(record, 'exit', status.exit);
    setOrDelete(record, 'reason', status.reason);
    this.settle(record);
    return true;
  }

  /** Hello reconciliation: dynos the coordinator placed on this agent that the agent no longer
   * reports are down. Returns them. */
  markMissing(agentId: string, reported: ReadonlySet<string>, now: Date = new Date()): DynoRecord[] {
    const missing: DynoRecord[] = [];
    for (const record of [...this.records.values()]) {
      if (record.agentId !== agentId || reported.has(record.id) || record.state === 'down') continue;
      record.state = 'down';
      record.since = now.toISOString();
      record.reason = { code: 'DYNO_NOT_FOUND', message: 'the agent no longer reports this dyno', retryable: false };
      delete record.endpoint;
      missing.push(record);
      this.settle(record);
    }
    return missing;
  }

  /** The dynos of one formation that the coordinator still wants, gone ones excluded. */
  wantedOf(app: string, type: string): DynoRecord[] {
    return this.sorted(this.matching((r) => r.app === app && r.type === type && r.desired === 'run' && r.state !== 'down'));
  }

  /** Down records of a formation at an index (superseded once a new dyno takes the index). */
  downAt(app: string, type: string, index: number): DynoRecord[] {
    return this.sorted(this.matching((r) => r.app === app && r.type === type && r.index === index && r.state === 'down'));
  }

  /** The records `keep` selects, unsorted: one pass, where list() would sort the whole fleet's
   * dynos first (10,000 of them cost milliseconds on every formation change). */
  private matching(keep: (r: DynoRecord) => boolean): DynoRecord[] {
    const out: DynoRecord[] = [];
    for (const r of this.records.values()) if (keep(r)) out.push(r);
    return out;
  }

  /** Dynos on an agent that the coordinator wants stopped but the agent still runs. */
  unwantedOn(agentId: string): DynoRecord[] {
    return this.on(agentId).filter((r) => r.desired === 'stop' && r.state !== 'down');
  }

  /** Every record placed on an agent, unsorted: runs on each hello, so no sort of the fleet's
   * dynos (list() sorts them all) during a reconnect storm. */
  on(agentId: string): DynoRecord[] {
    const out: DynoRecord[] = [];
    for (const r of this.records.values()) if (r.agentId === agentId) out.push(r);
    return out;
  }

  hasApp(app: string): boolean {
    for (const r of this.records.values()) if (r.app === app) return true;
    return false;
  }

  list(): DynoRecord[] {
    return this.sorted([...this.records.values()]);
  }

  private sorted(records: DynoRecord[]): DynoRecord[] {
    return records.sort((a, b) =>
      a.app.localeCompare(b.app) || a.type.localeCompare(b.type) || a.index - b.index || a.id.localeCompare(b.id));
  }

  /** The views of the records `filter` keeps, sorted: filtered first, so that one app's ps
   * does not sort the whole fleet's dynos. */
  views(filter: (r: DynoRecord) => boolean = () => true): DynoView[] {
    return this.sorted(this.matching(filter)).map(toView);
  }

  /** Keeps the route table in step and drops records nobody wants any more. */
  private settle(record: DynoRecord): void {
    // An unwanted dyno leaves the route table at once, before its SIGTERM (preboot, drain).
    const changed = record.desired === 'stop' ? this.routes.remove(record.app, record.id) : this.routes.applyDynoState(record, this.agentAddress(record.agentId));
    if (changed) {
      const route = this.routes.routeOf(record.app, record.id);
      this.sink(route ? { kind: 'route', route: { app: record.app, ...route } } : { kind: 'route_deleted', app: record.app, dynoId: record.id });
    }
    if (record.state === 'down' && record.desired === 'stop') {
      this.records.delete(record.id);
      this.sink({ kind: 'dyno_deleted', id: record.id });
    } else {
      this.sink({ kind: 'dyno', dyno: { ...record } });
    }
  }
}

export function toView(r: DynoRecord): DynoView {
  const view: DynoView = { id: r.id, app: r.app, type: r.type, name: r.name, agentId: r.agentId, state: r.state, since: r.since };
  if (r.endpoint) view.endpoint = r.endpoint;
  if (r.exit) view.exit = r.exit;
  if (r.reason) view.reason = r.reason;
  return view;
}

function setOrDelete<K extends 'endpoint' | 'exit' | 'reason'>(record: DynoRecord, key: K, value: DynoRecord[K] | undefined): void {
  if (value === undefined) delete record[key];
  else record[key] = value;
}
