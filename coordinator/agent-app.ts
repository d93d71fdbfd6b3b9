// What the agents' messages mean to the reference coordinator: the AgentApp the SDK's
// AgentServer (shared/coordinator-sdk/) calls. One small function per message type; all
// synchronous, nothing waits on the network: anything slow (stopping unwanted dynos after a
// hello) runs on its own from ready().
import type { Logger } from '../shared/log.js';
import type { AgentApp } from '../shared/coordinator-sdk/index.js';
import type { AgentRegistry } from './agent-registry.js';
import type { AppLogs } from './app-logs.js';
import type { DynoTable } from './dyno-table.js';
import type { FormationService } from './formation-service.js';

/** Counters of the coordinator's own (GET /healthz shows them beside the SDK's). */
export interface AppStats {
  /** Events older than the state already known (a resend that predates a hello's snapshot). */
  staleEvents: number;
}

export interface AgentAppDeps {
  registry: AgentRegistry;
  dynos: DynoTable;
  formations: FormationService;
  logs: AppLogs;
  stats: AppStats;
  log: Logger;
}

export function createAgentApp(deps: AgentAppDeps): AgentApp {
  const { registry, dynos, formations, stats, log } = deps;
  return {
    hello(agentId, m) {
      registry.attach(m.agent, m.capacity);
      // The hello is the agent's complete current state: it wins over whatever the
      // coordinator believed, including events it applied before the link dropped.
      const reported = new Set<string>();
      for (const status of m.dynos) {
        dynos.applyStatus(agentId, status, 'hello');
        reported.add(status.id);
      }
      // The desired set: what the coordinator wants there, with the spec of each dyno placed
      // there that the agent lost (so the agent starts it again); the rest it gave up on.
      const desired = formations.desiredOn(agentId, reported);
      const respawn = new Set(desired.filter((d) => d.spec).map((d) => d.id));
      const missing = dynos.markMissing(agentId, new Set([...reported, ...respawn]));
      // Quiet unless the hello changed something (a reconnect storm is thousands of hellos).
      if (missing.length + respawn.size > 0) log.info({ agentId, missing: missing.map((d) => d.id), respawn: [...respawn] }, 'agent state reconciled');
      return { desired };
    },

    ready(agentId) {
      formations.reconcileAgent(agentId);
      // An interruption the hello's capacity carries (a coordinator restarted since the event):
      // evacuated like one from the event (once per agent).
      const interruption = registry.interruption(agentId);
      if (interruption) void formations.hostNotice(agentId, interruption);
    },

    event(agentId, m) {
      if (m.event.kind === 'host_notice') {
        // EC2 says the host goes away (or may): formation-service.ts evacuates it, placement.ts
        // avoids it.
        const { kind: _kind, ...notice } = m.event;
        registry.setNotice(agentId, notice);
        log.info({ agentId, seq: m.seq, notice: notice.notice, deadline: notice.deadline, action: notice.action }, 'host notice');
        void formations.hostNotice(agentId, notice);
        return;
      }
      if (m.event.kind === 'memory_warning') {
        // Advisory (the dyno keeps running): the reference coordinator only records it; a
        // placement that starts a replacement before the R15 would act here.
        const { kind: _kind, ...w } = m.event;
        log.warn({ agentId, seq: m.seq, ...w }, 'dyno memory warning');
        return;
      }
      const status = m.event.dyno;
      if (!dynos.applyStatus(agentId, status, 'event')) stats.staleEvents++;
      // A one-off dyno whose command ended is stopped and forgotten (it never restarts).
      else if (status.type === 'run' && (status.state === 'crashed' || status.state === 'down')) formations.oneOffEnded(status.id);
      log.debug({ agentId, seq: m.seq, dynoId: status.id, dyno: status.name, app: status.app, from: m.event.from, state: status.state }, 'dyno state');
    },

    logs(agentId, m) {
      deps.logs.add(agentId, m.lines, m.dropped);
      if (m.dropped > 0) log.warn({ agentId, dropped: m.dropped }, 'agent dropped log lines (its queue was full)');
    },

    capacity(agentId, m) {
      registry.setCapacity(agentId, m.capacity);
    },

    disconnected(agentId) {
      // Routes stay: dynos keep running while the link is down (see route-table.ts).
      registry.detach(agentId);
    },
  };
}
