// One small handler per message type an agent sends, in one table the session dispatches
// through. Handlers are synchronous and never wait on the network: anything slow (stopping
// unwanted dynos after a hello) is handed to onAgentReady, which runs on its own.
import type { Logger } from '../agent/lib/log.js';
import { isErrorCode, SlipwayError } from '../shared/errors.js';
import { PROTOCOL_VERSION, type AgentMessage, type CoordinatorMessage } from '../shared/protocol.js';
import type { AgentLink, AgentRegistry } from './agent-registry.js';
import type { CommandTracker } from './command-tracker.js';
import type { DynoTable } from './dyno-table.js';
import type { AppLogs } from './app-logs.js';

/** The side of a session a handler may use. */
export interface SessionContext extends AgentLink {
  /** Set by the hello handler; undefined until the agent said hello. */
  agentId: string | undefined;
  send(message: CoordinatorMessage): void;
}

export type AgentMessageType = AgentMessage['type'];
export type AgentHandlerTable = {
  [K in AgentMessageType]: (session: SessionContext, message: Extract<AgentMessage, { type: K }>) => void;
};

/** Counters shown by GET /healthz. */
export interface LinkStats {
  invalidFrames: Record<string, number>;
  duplicateEvents: number;
  staleEvents: number;
  agentErrors: number;
}

export function newLinkStats(): LinkStats {
  return { invalidFrames: {}, duplicateEvents: 0, staleEvents: 0, agentErrors: 0 };
}

export interface AgentHandlerDeps {
  coordinatorId: string;
  registry: AgentRegistry;
  dynos: DynoTable;
  commands: CommandTracker;
  stats: LinkStats;
  log: Logger;
  logs: AppLogs;
  /** Called after every welcome; must not throw. */
  onAgentReady: (agentId: string) => void;
}

/** WebSocket close codes of the application range (4000-4999). */
export const CLOSE_REPLACED = 4000;
export const CLOSE_PROTOCOL_UNSUPPORTED = 4001;
export const CLOSE_NO_HELLO = 4002;

export function createAgentHandlers(deps: AgentHandlerDeps): AgentHandlerTable {
  const { registry, dynos, commands, stats, log } = deps;
  return {
    hello(session, m) {
      if (m.protocol !== PROTOCOL_VERSION) {
        session.send({ type: 'error', code: 'PROTOCOL_VERSION_UNSUPPORTED', message: `this coordinator speaks protocol ${PROTOCOL_VERSION}, not ${m.protocol}`, ref: 'hello' });
        session.close(CLOSE_PROTOCOL_UNSUPPORTED, 'protocol version unsupported');
        return;
      }
      const agentId = m.agent.id;
      if (session.agentId !== undefined && session.agentId !== agentId) {
        session.send({ type: 'error', code: 'PROTOCOL_SCHEMA_VIOLATION', message: 'an agent cannot change its id on a live link', ref: 'hello' });
        return;
      }
      session.agentId = agentId;
      const previous = registry.attach(m.agent, m.capacity, session);
      if (previous) {
        log.info({ agentId, serial: previous.serial }, 'closing the older link of a reconnected agent');
        previous.close(CLOSE_REPLACED, 'replaced by a newer connection of the same agent');
      }
      // The hello is the agent's complete current state: it wins over whatever the
      // coordinator believed, including events it applied before the link dropped.
      const reported = new Set<string>();
      for (const status of m.dynos) {
        dynos.applyStatus(agentId, status, 'hello');
        reported.add(status.id);
      }
      const missing = dynos.markMissing(agentId, reported);
      registry.enterSeqEpoch(agentId, m.seqEpoch);
      const ackSeq = registry.lastSeq(agentId);
      session.send({ type: 'welcome', protocol: PROTOCOL_VERSION, coordinatorId: deps.coordinatorId, ackSeq });
      log.info({ agentId, hostname: m.agent.hostname, dynos: m.dynos.length, missing: missing.map((d) => d.id), ackSeq }, 'agent said hello');
      deps.onAgentReady(agentId);
    },

    event(session, m) {
      const agentId = session.agentId as string;
      const last = registry.lastSeq(agentId);
      if (m.seq <= last) {
        // Resent after a reconnect, or sent twice: already applied; ack again, apply never.
        stats.duplicateEvents++;
        session.send({ type: 'ack', seq: last });
        return;
      }
      if (m.seq > last + 1) log.warn({ agentId, seq: m.seq, lastSeq: last }, 'event sequence gap; the next hello reconciles');
      const status = m.event.dyno;
      if (!dynos.applyStatus(agentId, status, 'event')) stats.staleEvents++;
      registry.advanceSeq(agentId, m.seq);
      session.send({ type: 'ack', seq: m.seq });
      log.debug({ agentId, seq: m.seq, dynoId: status.id, dyno: status.name, app: status.app, from: m.event.from, state: status.state }, 'dyno state');
    },

    logs(session, m) {
      deps.logs.add(session.agentId as string, m.lines, m.dropped);
      if (m.dropped > 0) log.warn({ agentId: session.agentId, dropped: m.dropped }, 'agent dropped log lines (its queue was full)');
    },

    capacity(session, m) {
      registry.setCapacity(session.agentId as string, m.capacity);
    },

    result(session, m) {
      const agentId = session.agentId as string;
      if (!commands.settle(agentId, m)) log.warn({ agentId, commandId: m.id }, 'result for no pending command (late or unknown)');
    },

    error(session, m) {
      stats.agentErrors++;
      const agentId = session.agentId;
      log.warn({ agentId, code: m.code, ref: m.ref, message: m.message }, 'agent reported an error');
      if (agentId !== undefined && m.ref !== undefined) {
        // The agent could not accept a command (an invalid frame): fail its waiter now.
        commands.fail(m.ref, agentId, new SlipwayError(isErrorCode(m.code) ? m.code : 'INTERNAL', m.message));
      }
    },
  };
}
