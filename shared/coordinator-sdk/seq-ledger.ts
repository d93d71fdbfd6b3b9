// De-duplication of agent events: per agent, the highest event seq applied and the numbering
// (hello.seqEpoch) it belongs to. An event at or below it was applied already (a resend after
// a reconnect): it is acked again, never applied twice. A new epoch (the agent lost its
// journal) starts again at 0. In memory: a coordinator that restarts welcomes with ackSeq 0,
// the agent resends what it still holds, and the application applies those events against
// the hello's snapshot (which wins; see the reference coordinator's dyno table).
export interface LedgerEntry {
  agentId: string;
  seqEpoch: string;
  lastSeq: number;
}

export class SeqLedger {
  private readonly agents = new Map<string, { epoch: string; lastSeq: number }>();

  /** A hello names the agent's numbering; returns the seq to welcome with (ackSeq). */
  enter(agentId: string, epoch: string): number {
    const known = this.agents.get(agentId);
    if (known && known.epoch === epoch) return known.lastSeq;
    this.agents.set(agentId, { epoch, lastSeq: 0 });
    return 0;
  }

  /** Starts from entries a previous coordinator kept (a store's, after a failover). */
  restore(entries: Iterable<LedgerEntry>): void {
    for (const e of entries) this.agents.set(e.agentId, { epoch: e.seqEpoch, lastSeq: e.lastSeq });
  }

  /** The agent's entry now (after enter(): always present). */
  entry(agentId: string): LedgerEntry {
    const known = this.agents.get(agentId);
    return { agentId, seqEpoch: known?.epoch ?? '', lastSeq: known?.lastSeq ?? 0 };
  }

  lastSeq(agentId: string): number {
    return this.agents.get(agentId)?.lastSeq ?? 0;
  }

  /** 'new' when `seq` was never applied (and records it), 'duplicate' otherwise. A gap
   * (seq > last + 1) is applied: the agent's journal coalesced or the coordinator lost
   * state; the next hello's snapshot reconciles. */
  accept(agentId: string, seq: number): 'new' | 'duplicate' {
    const known = this.agents.get(agentId);
    if (!known) return 'new';
    if (seq <= known.lastSeq) return 'duplicate';
    known.lastSeq = seq;
    return 'new';
  }

  get size(): number {
    return this.agents.size;
  }
}
