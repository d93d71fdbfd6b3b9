// Every agent that ever said hello to this coordinator: identity, last capacity, whether its
// link is up, and the coordinator's own memory reservations on it. In memory only: a
// restarted coordinator learns everything back from the agents' hellos. The links
// themselves, and the event numbering, belong to the SDK's AgentServer.
import type { AgentFeature, AgentIdentity, Capacity, HostNotice } from '../shared/protocol.js';
import type { AgentPlacementView } from './placement.js';
import { MIB, placementZone } from './placement.js';
import type { StoredAgent, StoreWrite } from './store/store.js';

/** A dyno the coordinator sent to an agent. 'pending' until the agent admits it; 'admitted'
 * once it did but no capacity report since then includes it. */
interface Reservation {
  bytes: number;
  phase: 'pending' | 'admitted';
}

interface AgentRecord {
  identity: AgentIdentity;
  capacity: Capacity;
  connected: boolean;
  reservations: Map<string, Reservation>;
  /** What EC2 said of the host (host_notice events, the capacity report's `notices`). An
   * interruption stays for the life of the record: EC2 does not take one back. */
  interruption?: HostNotice;
  rebalance?: HostNotice;
  /** What placement read of it when it was last written through, and when (written()). */
  storedKey?: string;
  storedAt?: number;
}

/** What GET /agents shows of an agent. */
export interface AgentView {
  id: string;
  hostname: string;
  address: string;
  /** The EC2 instance (type, zone, region, private IP) when the agent runs on EC2. */
  ec2?: NonNullable<AgentIdentity['ec2']>;
  connected: boolean;
  capacity: Capacity;
  dynoCount: number;
  lastSeq: number;
  /** EC2's notices for the host: an interruption (it goes away) and a rebalance recommendation. */
  notices: HostNotice[];
}

/** A capacity report that changes nothing placement reads is stored at most this often. */
export const STORED_CAPACITY_MS = 60_000;

export class AgentRegistry {
  private readonly agents = new Map<string, AgentRecord>();
  /** placementViews()'s cache: the array, each agent's view in it, and the agents whose view
   * is out of date. */
  private viewCache: AgentPlacementView[] | undefined;
  private readonly viewOf = new Map<string, AgentPlacementView>();
  private readonly dirty = new Set<string>();

  /** `lastSeq` for the views: the SDK's de-duplication ledger knows it. `sink`: where every
   * change of identity, capacity or notices is written through (reservations are not: they
   * belong to commands in flight, which a new leader does not have). */
  constructor(
    private readonly lastSeq: (agentId: string) => number = () => 0,
    private readonly sink: (write: StoreWrite) => void = () => undefined,
  ) {}

  /** A new leadership term starts from the stored agents, every one disconnected until its
   * hello on a link to this coordinator. */
  restore(stored: readonly StoredAgent[]): void {
    this.touched();
    this.agents.clear();
    for (const a of stored) {
      const record: AgentRecord = { identity: structuredClone(a.identity), capacity: structuredClone(a.capacity), connected: false, reservations: new Map() };
      if (a.interruption) record.interruption = structuredClone(a.interruption);
      if (a.rebalance) record.rebalance = structuredClone(a.rebalance);
      this.agents.set(a.identity.id, record);
    }
  }

  /** Writes the agent through when `force` (a hello, a notice), when what placement reads of
   * it changed, or when its last write is STORED_CAPACITY_MS old. A capacity report every 10 s
   * from each of 2,000 agents is 200 writes a second of load averages and cache sizes that the
   * next hello replaces anyway (a new leader hears every agent's hello); written in full they
   * cost the store a row each and the coordinator the garbage of serializing them, which the
   * fleet benchmark saw as collection pauses inside placement decisions. */
  private written(record: AgentRecord, force = true): void {
    const m = record.capacity.memory;
    const key = `${record.capacity.accepting}|${m.allocatableBytes}|${m.committedBytes}|${record.capacity.dynoCount}|${record.interruption?.notice ?? ''}|${record.rebalance?.notice ?? ''}`;
    const now = Date.now();
    if (!force && key === record.storedKey && now - (record.storedAt ?? 0) < STORED_CAPACITY_MS) return;
    record.storedKey = key;
    record.storedAt = now;
    const agent: StoredAgent = { identity: record.identity, capacity: record.capacity, seenAt: new Date().toISOString() };
    if (record.interruption) agent.interruption = record.interruption;
    if (record.rebalance) agent.rebalance = record.rebalance;
    this.sink({ kind: 'agent', agent });
  }

  /** Registers the agent of a hello (its current link is up). */
  attach(identity: AgentIdentity, capacity: Capacity): void {
    const record = this.agents.get(identity.id);
    if (!record) {
      const created: AgentRecord = { identity, capacity, connected: true, reservations: new Map() };
      this.agents.set(identity.id, created);
      this.touched();
      this.noticesFrom(created, capacity);
      this.written(created);
      return;
    }
    record.identity = identity;
    record.connected = true;
    this.touched(identity.id);
    this.setCapacity(identity.id, capacity, true);
  }

  /** The agent's current link closed. Pending reservations go: their commands fail with the link. */
  detach(agentId: string): void {
    const record = this.agents.get(agentId);
    if (!record) return;
    this.touched(agentId);
    record.connected = false;
    for (const [dynoId, r] of record.reservations) if (r.phase === 'pending') record.reservations.delete(dynoId);
  }

  connected(agentId: string): boolean {
    return this.agents.get(agentId)?.connected ?? false;
  }

  /** The agents whose identity does not name `feature` (placement avoids them for a dyno that
   * needs it). */
  lacking(feature: AgentFeature): Set<string> {
    const out = new Set<string>();
    for (const [id, r] of this.agents) if (!r.identity.features?.includes(feature)) out.add(id);
    return out;
  }

  address(agentId: string): string | undefined {
    return this.agents.get(agentId)?.identity.address;
  }

  /** Latest capacity wins. Admitted reservations end here: a report sent after the agent
   * admitted a dyno already counts it in committedBytes (one ordered link). */
  setCapacity(agentId: string, capacity: Capacity, hello = false): void {
    const record = this.agents.get(agentId);
    if (!record) return;
    this.touched(agentId);
    record.capacity = capacity;
    for (const [dynoId, r] of record.reservations) if (r.phase === 'admitted') record.reservations.delete(dynoId);
    this.noticesFrom(record, capacity);
    this.written(record, hello);
  }

  /** A host_notice event. */
  setNotice(agentId: string, notice: HostNotice): void {
    const record = this.agents.get(agentId);
    if (!record) return;
    this.touched(agentId);
    if (notice.notice === 'rebalance') record.rebalance = notice;
    else if (!record.interruption || (notice.notice === 'spot_interruption' && record.interruption.notice !== 'spot_interruption')) record.interruption = notice;
    this.written(record);
  }

  /** The interruption EC2 announced for the host, if any (the evacuation's deadline). */
  interruption(agentId: string): HostNotice | undefined {
    return this.agents.get(agentId)?.interruption;
  }

  /** The capacity report lists the notices the agent sees now: a rebalance recommendation
   * comes and goes with it; an interruption only comes. An agent without EC2 sends none. */
  private noticesFrom(record: AgentRecord, capacity: Capacity): void {
    if (!capacity.notices) return;
    for (const n of capacity.notices) if (n.notice !== 'rebalance') this.setNotice(record.identity.id, n);
    const rebalance = capacity.notices.find((n) => n.notice === 'rebalance');
    if (rebalance) record.rebalance = rebalance;
    else delete record.rebalance;
  }

  reserve(agentId: string, dynoId: string, memoryMb: number): void {
    this.touched(agentId);
    this.agents.get(agentId)?.reservations.set(dynoId, { bytes: memoryMb * MIB, phase: 'pending' });
  }

  admit(agentId: string, dynoId: string): void {
    const r = this.agents.get(agentId)?.reservations.get(dynoId);
    if (r) r.phase = 'admitted';
  }

  release(agentId: string, dynoId: string): void {
    this.touched(agentId);
    this.agents.get(agentId)?.reservations.delete(dynoId);
  }

  /** What placement reads of every agent. Kept between decisions: an agent's view is
   * refreshed in place once something of it changed (dirty), and the array is built again only
   * when agents come or go. Placement runs for every dyno placed over the whole fleet; a fresh
   * object per agent per decision was 20,000 objects per formation change at 2,000 agents, and
   * the collections they caused landed inside the placement timer (the fleet benchmark's p99).
   * Callers read the views and must not change them (placeDynos works on copies). */
  placementViews(): readonly AgentPlacementView[] {
    if (!this.viewCache) {
      this.viewCache = [];
      this.viewOf.clear();
      for (const r of this.agents.values()) {
        const view = this.freshView(r);
        this.viewOf.set(r.identity.id, view);
        this.viewCache.push(view);
      }
      this.dirty.clear();
      return this.viewCache;
    }
    for (const id of this.dirty) {
      const r = this.agents.get(id);
      const view = this.viewOf.get(id);
      if (r && view) Object.assign(view, this.freshView(r));
    }
    this.dirty.clear();
    return this.viewCache;
  }

  private freshView(r: AgentRecord): AgentPlacementView {
    let reservedBytes = 0;
    for (const x of r.reservations.values()) reservedBytes += x.bytes;
    return {
      id: r.identity.id,
      connected: r.connected,
      accepting: r.capacity.accepting,
      allocatableBytes: r.capacity.memory.allocatableBytes,
      committedBytes: r.capacity.memory.committedBytes,
      reservedBytes,
      interrupted: r.interruption !== undefined,
      rebalance: r.rebalance !== undefined,
      zone: placementZone(r.identity),
    };
  }

  /** Something placement reads of the agent changed (or, with no id, the set of agents). */
  private touched(agentId?: string): void {
    if (agentId === undefined) this.viewCache = undefined;
    else this.dirty.add(agentId);
  }

  connectedCount(): number {
    let n = 0;
    for (const r of this.agents.values()) if (r.connected) n++;
    return n;
  }

  views(): AgentView[] {
    return [...this.agents.values()]
      .sort((a, b) => (a.identity.id < b.identity.id ? -1 : 1))
      .map((r) => ({
        id: r.identity.id,
        hostname: r.identity.hostname,
        address: r.identity.address,
        ...(r.identity.ec2 ? { ec2: r.identity.ec2 } : {}),
        connected: r.connected,
        capacity: r.capacity,
        dynoCount: r.capacity.dynoCount,
        lastSeq: this.lastSeq(r.identity.id),
        notices: [r.interruption, r.rebalance].filter((n): n is HostNotice => n !== undefined),
      }));
  }
}
