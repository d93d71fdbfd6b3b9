// Placement: which agent gets a new dyno. Pure functions over a snapshot of agent views and
// the formation's spread, so the rule is unit-tested without sockets.
//
// Rule, for one dyno of an app's process type (a formation), among connected agents that
// accept new dynos and whose free allocatable memory fits the dyno's quota:
//   1. never a host with an interruption; a host with a rebalance recommendation only when no
//      host without one fits (EC2's notices, below);
//   2. the zone with the fewest of the formation's dynos;
//   3. within it, the host with the fewest of the formation's dynos;
//   4. then the most free memory (spreading load, leaving big holes for big dynos elsewhere);
//   5. then the smallest agent id, so the choice is deterministic.
// "The formation's dynos" are the ones the coordinator wants running for this app and process
// type: reported ones and ones placed but not reported yet (a Spread, counted once per
// formation change and kept up to date by the caller as it places), without the ones the change
// stops or replaces (they are leaving). Counted per app+process type, not per app: Heroku
// spreads a process type's dynos, and types scale apart; counted per app, an app's two web
// dynos could share a zone while its workers filled the other, and one zone's loss would take
// all of its web. Zone counts include dynos on hosts that cannot take more (full, disconnected,
// noticed): those dynos still run in that zone.
//
// A host's zone is the agent's `zone` (its configured one, else its EC2 availability zone),
// else the EC2 identity's availability zone (an agent that predates `zone`), else none: all
// zoneless hosts are one zone, so a fleet without zones spreads across hosts only.
//
// Free memory is the agent's allocatable bytes minus what it reported as committed minus the
// coordinator's own reservations that the agent's report does not include yet; without the
// reservations two dynos placed back to back would both see the same free space.
//
// EC2's notices (agent/host/ec2/host-signals.ts): a host with an interruption (a spot notice, an
// Auto Scaling termination) gets nothing, whatever its last report says (its `accepting: false`
// may still be on the way). A host with a rebalance recommendation is a last resort: it is
// chosen only when no host without one fits, even when its zone has the fewest dynos. It still
// runs and may run for hours (a recommendation is a raised risk, not a notice), so refusing it
// outright would turn a recommendation on a small fleet into INSUFFICIENT_CAPACITY; preferring
// every other host moves new dynos off it as capacity allows.
//
// Cost: one choice is two passes over the agents (zone totals from the Spread's per-host counts,
// then the best fit), O(agents) with no dependence on the fleet's dyno count; the per-host
// counts are built once per formation change from the formation's dynos. The coordinator's
// budget is p99 < 5 ms with 2,000 agents (issue 15; scripts/bench/placement.sh measures it).
import type { AgentIdentity } from '../shared/protocol.js';

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
  /** The host's failure domain (placementZone); absent: the one unnamed zone. */
  zone?: string | undefined;
}

/** The zone placement spreads a host's dynos by: the agent's own `zone`, else its EC2
 * availability zone, else none. */
export function placementZone(identity: Pick<AgentIdentity, 'zone' | 'ec2'>): string | undefined {
  return identity.zone ?? identity.ec2?.availabilityZone;
}

/** The unnamed zone's key: the protocol's zone pattern has no empty name. */
const NO_ZONE = '';

export function freeBytes(agent: AgentPlacementView): number {
  return agent.allocatableBytes - agent.committedBytes - agent.reservedBytes;
}

/** How many of one formation's wanted dynos each agent runs or is about to. Built once per
 * formation change; the caller adds each dyno it places and removes each placement that did
 * not happen (refused, unanswered), so every choice of the change sees the ones before it. */
export class Spread {
  private readonly perAgent = new Map<string, number>();
  private count = 0;

  /** One agent id per dyno. */
  constructor(agentIds: Iterable<string> = []) {
    for (const id of agentIds) this.add(id);
  }

  add(agentId: string): void {
    this.perAgent.set(agentId, (this.perAgent.get(agentId) ?? 0) + 1);
    this.count++;
  }

  remove(agentId: string): void {
    const n = this.perAgent.get(agentId);
    if (n === undefined) return;
    if (n <= 1) this.perAgent.delete(agentId);
    else this.perAgent.set(agentId, n - 1);
    this.count--;
  }

  on(agentId: string): number {
    return this.perAgent.get(agentId) ?? 0;
  }

  /** The formation's dynos in all. */
  get size(): number {
    return this.count;
  }

  copy(): Spread {
    const out = new Spread();
    for (const [id, n] of this.perAgent) for (let i = 0; i < n; i++) out.add(id);
    return out;
  }
}

const NO_AGENTS: ReadonlySet<string> = new Set();
const EMPTY: Spread = new Spread();

/** The agent for one dyno of `memoryMb`, or undefined when none fits. `exclude` holds agents
 * that already refused this dyno; `spread` counts the formation's dynos (none: only memory
 * decides, as for a formation's first dyno). */
export function chooseAgent(
  agents: readonly AgentPlacementView[],
  memoryMb: number,
  exclude: ReadonlySet<string> = NO_AGENTS,
  spread: Spread = EMPTY,
  /** Bytes reserved on top of the views' reservedBytes (placeDynos: the change's earlier dynos). */
  extraReserved?: ReadonlyMap<string, number>,
): AgentPlacementView | undefined {
  const need = memoryMb * MIB;
  const extra = extraReserved !== undefined && extraReserved.size > 0 ? extraReserved : undefined;
  // Pass 1: each host's and each zone's count of the formation's dynos (none: all zero).
  const perHost = spread.size === 0 ? undefined : new Uint32Array(agents.length);
  const perZone = new Map<string, number>();
  if (perHost) {
    for (let i = 0; i < agents.length; i++) {
      const agent = agents[i]!;
      const n = spread.on(agent.id);
      if (n === 0) continue;
      perHost[i] = n;
      const zone = agent.zone ?? NO_ZONE;
      perZone.set(zone, (perZone.get(zone) ?? 0) + n);
    }
  }
  // Pass 2: the best fit by the rule.
  let best: AgentPlacementView | undefined;
  // The best one's key, in rule order (lower wins, except free memory).
  let bestRebalance = false;
  let bestZone = 0;
  let bestHost = 0;
  let bestFree = 0;
  for (let i = 0; i < agents.length; i++) {
    const agent = agents[i]!;
    if (!agent.connected || !agent.accepting || agent.interrupted || exclude.has(agent.id)) continue;
    const free = extra === undefined ? freeBytes(agent) : freeBytes(agent) - (extra.get(agent.id) ?? 0);
    if (free < need) continue;
    const rebalance = agent.rebalance ?? false;
    const zone = perZone.size === 0 ? 0 : perZone.get(agent.zone ?? NO_ZONE) ?? 0;
    const host = perHost === undefined ? 0 : perHost[i]!;
    if (best !== undefined) {
      if (rebalance !== bestRebalance) {
        if (rebalance) continue;
      } else if (zone !== bestZone) {
        if (zone > bestZone) continue;
      } else if (host !== bestHost) {
        if (host > bestHost) continue;
      } else if (free !== bestFree) {
        if (free < bestFree) continue;
      } else if (agent.id > best.id) {
        continue;
      }
    }
    best = agent;
    bestRebalance = rebalance;
    bestZone = zone;
    bestHost = host;
    bestFree = free;
  }
  return best;
}

/** Places several dynos of one formation in order, each one accounting for those placed before
 * it (their memory and their spread). Returns one agent id per dyno, undefined for a dyno that
 * fits nowhere. Neither the views nor `spread` is changed. */
export function placeDynos(agents: readonly AgentPlacementView[], memoryMbs: readonly number[], spread: Spread = EMPTY): (string | undefined)[] {
  // The change's own reservations beside the views, not a copy of every view (2,000 objects
  // per formation change, inside the placement timer).
  const reserved = new Map<string, number>();
  const placed = spread.copy();
  const out: (string | undefined)[] = [];
  for (const memoryMb of memoryMbs) {
    const chosen = chooseAgent(agents, memoryMb, NO_AGENTS, placed, reserved);
    if (!chosen) {
      out.push(undefined);
      continue;
    }
    reserved.set(chosen.id, (reserved.get(chosen.id) ?? 0) + memoryMb * MIB);
    placed.add(chosen.id);
    out.push(chosen.id);
  }
  return out;
}
