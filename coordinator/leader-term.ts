// One leadership term of this coordinator: from the moment it holds the leadership lock and
// claimed an epoch until it loses either. A term owns the state a leader acts on (agents,
// dynos, formations, the agents' links and event ledger) and the StoreWriter that writes it
// through under the term's epoch; it starts from the store's snapshot and ends by closing
// every agent link, so that a deposed leader cannot command anything. What outlives a term
// (listeners, the route table the router serves, app logs) is start.ts's.
//
// Stored and not: formations (with their releases), dynos (placement, last state, desired),
// agents (identity, capacity, EC2 notices), routes, and each agent's event ledger. Not the
// coordinator's memory reservations: they belong to commands in flight, which end with the
// term (their agents report the outcome in their next hello).
import type { RequestListener } from 'node:http';
import type { Logger } from '../shared/log.js';
import { AgentServer, type CommandSender } from '../shared/coordinator-sdk/index.js';
import type { SlipwayError } from '../shared/errors.js';
import { createAgentApp, type AppStats } from './agent-app.js';
import { AgentRegistry } from './agent-registry.js';
import type { AppLogs } from './app-logs.js';
import type { CoordinatorConfig } from './config.js';
import { DynoTable } from './dyno-table.js';
import { FormationService } from './formation-service.js';
import { createApiHandler } from './http-api.js';
import { DrainManager } from './drains/drain-manager.js';
import type { RouteTable } from './route-table.js';
import type { CoordinatorStore, StoreSnapshot } from './store/store.js';
import { StoreWriter } from './store/store-writer.js';
import { Rendezvous } from '../shared/coordinator-sdk/rendezvous.js';

export interface LeaderTermDeps {
  config: CoordinatorConfig;
  store: CoordinatorStore;
  epoch: number;
  snapshot: StoreSnapshot;
  routes: RouteTable;
  logs: AppLogs;
  log: Logger;
  /** The term must end: its writes were fenced (another coordinator leads). */
  onFenced: (err: SlipwayError) => void;
  /** Called before the coordinator SIGTERMs a dyno whose route it removed: resolves once the
   * router no longer sends it new requests (HAProxy: the server is in drain). */
  routesSettled?: () => Promise<void>;
}

export class LeaderTerm {
  readonly epoch: number;
  readonly registry: AgentRegistry;
  readonly dynos: DynoTable;
  readonly formations: FormationService;
  readonly server: AgentServer;
  readonly writer: StoreWriter;
  readonly api: RequestListener;
  readonly drains: DrainManager;
  /** Attached one-off dynos' relays (`slipway run`): a term's sessions end with it. */
  readonly rendezvous: Rendezvous;
  private closing: Promise<void> | undefined;

  constructor(deps: LeaderTermDeps) {
    const { config, log, snapshot } = deps;
    this.epoch = deps.epoch;
    this.writer = new StoreWriter({
      store: deps.store, epoch: deps.epoch, log: log.child({ component: 'store-writer' }), onFenced: deps.onFenced,
      // In memory there is nothing to group: every change is "durable" at once.
      batchDelayMs: deps.store.kind === 'memory' ? 0 : 5,
    });
    const sink = (w: Parameters<StoreWriter['put']>[0]): void => this.writer.put(w);
    const durable = (): Promise<void> => this.writer.flushed();

    let lastSeqOf: (agentId: string) => number = () => 0;
    this.registry = new AgentRegistry((agentId) => lastSeqOf(agentId), sink);
    this.registry.restore(snapshot.agents);
    const registry = this.registry;
    this.dynos = new DynoTable(deps.routes, (agentId) => registry.address(agentId), sink);
    this.dynos.restore(snapshot.dynos);

    this.rendezvous = new Rendezvous({ log: log.child({ component: 'rendezvous' }) });
    const commander: CommandSender = { sendCommand: (agentId, command) => this.server.sendCommand(agentId, command) };
    this.formations = new FormationService({
      dynos: this.dynos, registry, commander, log: log.child({ component: 'formation' }), sink, durable, rendezvous: this.rendezvous,
      ...(deps.routesSettled ? { routesSettled: deps.routesSettled } : {}),
    });
    this.formations.restore(snapshot.formations);
    const appStats: AppStats = { staleEvents: 0 };
    this.server = new AgentServer({
      token: config.token, coordinatorId: config.coordinatorId, log: log.child({ component: 'agent-link' }),
      pingIntervalMs: config.timing.pingIntervalMs, commandTimeoutMs: config.timing.commandTimeoutMs,
      epoch: deps.epoch,
      ledger: snapshot.ledger,
      // An event is acknowledged once its effects and the ledger entry are in the store: a
      // failover after the ack loses nothing, one before it gets the event again.
      durable: (entry) => {
        this.writer.put({ kind: 'ledger', entry });
        return this.writer.flushed();
      },
      app: createAgentApp({ registry, dynos: this.dynos, formations: this.formations, logs: deps.logs, stats: appStats, log: log.child({ component: 'agent-app' }) }),
    });
    lastSeqOf = (agentId) => this.server.lastSeq(agentId);
    this.drains = new DrainManager({ logs: deps.logs, sink, ...(config.drainCa !== undefined ? { ca: config.drainCa } : {}) });
    this.drains.restore(snapshot.drains);
    const server = this.server;
    const writer = this.writer;
    this.api = createApiHandler({
      registry, dynos: this.dynos, routes: deps.routes, formations: this.formations, commander, drains: this.drains, durable, rendezvous: this.rendezvous,
      linkStats: () => ({ ...server.stats(), ...appStats }), logs: deps.logs,
      defaults: { sizes: config.sizes, defaultStack: config.defaultStack }, log: log.child({ component: 'api' }),
      leadership: () => ({ role: 'leader', epoch: deps.epoch, coordinatorId: config.coordinatorId, store: { kind: deps.store.kind, ...writer.stats, pending: writer.pendingCount } }),
    });
  }

  /** Ends the term: agent links close (1012, each told when to come back, so they find the
   * next leader spread out), then what is queued is written if the epoch still allows it. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.drains.close();
      this.rendezvous.close();
      await this.server.close();
      await this.writer.close();
    })();
    return this.closing;
  }
}
