// Placement: which agent gets a new dyno. Pure functions over a snapshot of agent views, so
// the rule is unit-tested without sockets.
//
// Rule: among connected agents that accept new dynos, choose the one with the most free
// allocatable memory that still fits the dyno's quota (spreading load, leaving big holes for
// big dynos elsewhere); ties go to the smallest agent id so the choice is deterministic.
// Free memory is the agent's allocatable bytes minus what it reported as committed minus the
// coordinator's own reservations that the agent's report does not include yet; without the
// reservations two dynos placed back to back would both see the same free space.
//
// EC2's notices (agent/host/ec2/host-signals.ts): a host with an interruption (a spot notice, an
// Auto Scaling termination) gets nothing, whatever its last report says (its `accepting: false`
// may still be on the way). A host with a rebalance recommendation is a last resort: it is
// chosen only when no host without one fits. It still runs and may run for hours (a
// recommendation is a raised risk, not a notice), so refusing it outright would turn a
// recommendation on a small fleet into INSUFFICIENT_CAPACITY; preferring every other host moves
// new dynos off it as capacity allows.

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
  /** EC2 announced that the host goes away: never placed on. */
  interrupted?: boolean;
  /** EC2 recommends rebalancing the host: placed on only when nothing else fits. */
  rebalance?: boolean;
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
  return bestFit(agents, memoryMb, exclude, false) ?? bestFit(agents, memoryMb, exclude, true);
}

/** The agent with the most free memory that fits, among hosts without (or, `rebalance`, with) a
 * rebalance recommendation. */
function bestFit(agents: readonly AgentPlacementView[], memoryMb: number, exclude: ReadonlySet<string>, rebalance: boolean): AgentPlacementView | undefined {
  const need = memoryMb * MIB;
  let best: AgentPlacementView | undefined;
  for (const agent of agents) {
    if (!agent.connected || !agent.accepting || agent.interrupted || (agent.rebalance ?? false) !== rebalance || exclude.has(agent.id)) continue;
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
