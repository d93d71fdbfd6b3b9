// Sends commands to agents over their current link and waits for the answer. The agent
// answers start_dyno right after admission (not when the dyno is up), so the bound is on
// the agent's responsiveness, not on the dyno's boot.
import { randomUUID } from 'node:crypto';
import { SlipwayError } from '../shared/errors.js';
import type { Drain, PrefetchSlug, Result, StartDyno, StopDyno, Undrain } from '../shared/protocol.js';
import type { AgentRegistry } from './agent-registry.js';
import type { CommandTracker } from './command-tracker.js';

export type CommandBody = Omit<StartDyno, 'id'> | Omit<StopDyno, 'id'> | Omit<PrefetchSlug, 'id'> | Omit<Drain, 'id'> | Omit<Undrain, 'id'>;

/** What FormationService needs of the agents: one call per command. */
export interface CommandSender {
  sendCommand(agentId: string, command: CommandBody): Promise<Result>;
}

export class AgentCommander implements CommandSender {
  constructor(
    private readonly registry: AgentRegistry,
    private readonly commands: CommandTracker,
  ) {}

  /** Sends the command with a fresh id and resolves with the agent's result (ok or not).
   * Rejects with AGENT_UNREACHABLE when the agent has no link or it closes first, and
   * COMMAND_TIMEOUT when the agent does not answer in time; the command may then have run. */
  sendCommand(agentId: string, command: CommandBody): Promise<Result> {
    const link = this.registry.link(agentId);
    if (!link) return Promise.reject(new SlipwayError('AGENT_UNREACHABLE', `agent ${agentId} is not connected`));
    const id = `cmd-${randomUUID()}`;
    const answer = this.commands.track(id, agentId, link.serial);
    link.send({ ...command, id } as StartDyno | StopDyno | PrefetchSlug | Drain | Undrain);
    return answer;
  }
}
