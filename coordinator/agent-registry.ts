// Every agent that ever said hello to this coordinator: identity, last capacity, link, the
// highest event seq applied, and the coordinator's own memory reservations on it. In memory
// only: a restarted coordinator learns everything back from the agents' hellos.
//
// Records are never removed, so an agent's lastSeq survives reconnects (welcome.ackSeq tells
// the agent which of its unacknowledged events to resend).
import type { AgentIdentity, Capacity, CoordinatorMessage } from '../shared/protocol.js';
import type { AgentPlacementView } from './placement.js';
import { MIB } from './placement.js';

/** One live WebSocket connection of an agent, as the registry and handlers see it. */
export interface AgentLink {
  /** Serial number of the connection, unique per coordinator process. */
  readonly serial: number;
  send(message: CoordinatorMessage): void;
  close(code: number, reason: string): void;
}

/** A dyno the coordinator sent to an agent. 'pending' until the agent admits it; 'admitted'
 * once it did but no capacity report since then includes it. */
interface Reservation {
  bytes: number;
  phase: 'pending' | 'admitted';
}

interface AgentRecord {
  identity: AgentIdentity;
  capacity: Capacity;
  link?: AgentLink;
  lastSeq: number;
  /** The numbering lastSeq belongs to (hello.seqEpoch). */
  seqEpoch: string | undefined;
  reservations: Map<string, Reservation>;
}

/** What GET /agents shows of an agent. */
export interface AgentView {
  id: string;
  hostname: string;
  address: string;
  connected: boolean;
  capacity: Capacity;
  dynoCount: number;
  lastSeq: number;
}

export class AgentRegistry {
  private readonly agents = new Map<string, AgentRecord>();

  /** Registers the agent of a hello on `link`. Returns the link it replaces, if any. */
  attach(identity: AgentIdentity, capacity: Capacity, link: AgentLink): AgentLink | undefined {
    const record = this.agents.get(identity.id);
    if (!record) {
      this.agents.set(identity.id, { identity, capacity, link, lastSeq: 0, seqEpoch: undefined, reservations: new Map() });
      return undefined;
    }
    const previous = record.link !== undefined && record.link.serial !== link.serial ? record.link : undefined;
    record.identity = identity;
    record.link = link;
    this.setCapacity(identity.id, capacity);
    return previous;
  }

  /** The link closed. Only the agent's current link detaches it (an older link replaced by a
   * newer one closes too). Pending reservations go: their commands fail with the link. */
  detach(agentId: string, link: AgentLink): boolean {
    const record = this.agents.get(agentId);
    if (!record || record.link?.serial !== link.serial) return false;
    delete record.link;
    for (const [dynoId, r] of record.reservations) if (r.phase === 'pending') record.reservations.delete(dynoId);
    return true;
  }

  link(agentId: string): AgentLink | undefined {
    return this.agents.get(agentId)?.link;
  }

  address(agentId: string): string | undefined {
    return this.agents.get(agentId)?.identity.address;
  }

  lastSeq(agentId: string): number {
    return this.agents.get(agentId)?.lastSeq ?? 0;
  }

  /** A hello names the agent's event numbering; a new epoch restarts lastSeq at 0. */
  enterSeqEpoch(agentId: string, epoch: string): void {
    const record = this.agents.get(agentId);
    if (!record || record.seqEpoch === epoch) return;
    record.seqEpoch = epoch;
    record.lastSeq = 0;
  }

  advanceSeq(agentId: string, seq: number): void {
    const record = this.agents.get(agentId);
    if (record && seq > record.lastSeq) record.lastSeq = seq;
  }

  /** Latest capacity wins. Admitted reservations end here: a report sent after the agent
   * admitted a dyno already counts it in committedBytes (one ordered link). */
  setCapacity(agentId: string, capacity: Capacity): void {
    const record = this.agents.get(agentId);
    if (!record) return;
    record.capacity = capacity;
    for (const [dynoId, r] of record.reservations) if (r.phase === 'admitted') record.reservations.delete(dynoId);
  }

  reserve(agentId: string, dynoId: string, memoryMb: number): void {
    this.agents.get(agentId)?.reservations.set(dynoId, { bytes: memoryMb * MIB, phase: 'pending' });
  }

  admit(agentId: string, dynoId: string): void {
    const r = this.agents.get(agentId)?.reservations.get(dynoId);
    if (r) r.phase = 'admitted';
  }

  release(agentId: string, dynoId: string): void {
    this.agents.get(agentId)?.reservations.delete(dynoId);
  }

  placementViews(): AgentPlacementView[] {
    return [...this.agents.values()].map((r) => ({
      id: r.identity.id,
      connected: r.link !== undefined,
      accepting: r.capacity.accepting,
      allocatableBytes: r.capacity.memory.allocatableBytes,
      committedBytes: r.capacity.memory.committedBytes,
      reservedBytes: [...r.reservations.values()].reduce((sum, x) => sum + x.bytes, 0),
    }));
  }

  connectedCount(): number {
    let n = 0;
    for (const r of this.agents.values()) if (r.link) n++;
    return n;
  }

  views(): AgentView[] {
    return [...this.agents.values()]
      .sort((a, b) => (a.identity.id < b.identity.id ? -1 : 1))
      .map((r) => ({
        id: r.identity.id,
        hostname: r.identity.hostname,
        address: r.identity.address,
        connected: r.link !== undefined,
        capacity: r.capacity,
        dynoCount: r.capacity.dynoCount,
        lastSeq: r.lastSeq,
      }));
  }
}
