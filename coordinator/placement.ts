// Placement: which agent gets a new dyno. Pure functions over a snapshot of agent views, so
// the rule is unit-tested without sockets.
//
// Rule: among connected agents that accept new dynos, choose the one with the most free
// allocatable memory that still fits the dyno's quota (spreading load, leaving big holes for
// big dynos elsewhere); ties go to the smallest agent id so the choice is deterministic.
// Free memory is the agent's allocatable bytes minus what it reported as committed minus the
// coordinator's own reservations that the agent's report does not include yet; without the
// reservations two dynos placed back to back would both see the same free space.

export const MIB = 1024 * 1024;

export interface AgentPlacementView {
  id: string;
  connected: boolean;
  accepting: boolean;
  allocatableBytes: number;
  committedBytes: number;
  /** Sum of the quotas of dynos the coordinator sent to this agent that its last capacity
   * report does not include yet. */
  reservedBytes: number;
}

export function freeBytes(agent: AgentPlacementView): number {
  return agent.allocatableBytes - agent.committedBytes - agent.reservedBytes;
}

/** The agent for one dyno of `memoryMb`, or undefined when none fits. `exclude` holds agents
 * that already refused this dyno. */
export function chooseAgent(
  agents: readonly AgentPlacementView[],
  memoryMb: number,
  exclude: ReadonlySet<string> = new Set(),
): AgentPlacementView | undefined {
  const need = memoryMb * MIB;
  let best: AgentPlacementView | undefined;
  for (const agent of agents) {
    if (!agent.connected || !agent.accepting || exclude.has(agent.id)) continue;
    const free = freeBytes(agent);
    if (free < need) continue;
    if (!best) {
      best = agent;
      continue;
    }
    const bestFree = freeBytes(best);
    if (free > bestFree || (free === bestFree && agent.id < best.id)) best = agent;
  }
  return best;
}

/** Places several dynos in order, each one accounting for those placed before it. Returns
 * one agent id per dyno, undefined for a dyno that fits nowhere. The input is not changed. */
export function placeDynos(agents: readonly AgentPlacementView[], memoryMbs: readonly number[]): (string | undefined)[] {
  const views = agents.map((a) => ({ ...a }));
  const out: (string | undefined)[] = [];
  for (const memoryMb of memoryMbs) {
    const chosen = chooseAgent(views, memoryMb);
    if (!chosen) {
      out.push(undefined);
      continue;
    }
    chosen.reservedBytes += memoryMb * MIB;
    out.push(chosen.id);
  }
  return out;
}
