// The store a coordinator's configuration names: in memory (the default) or PostgreSQL.
import type { Logger } from '../../shared/log.js';
import type { CoordinatorConfig } from '../config.js';
import { MemoryStore } from './memory-store.js';
import { PostgresStore } from './postgres-store.js';
import type { CoordinatorStore } from './store.js';

export function openStore(config: CoordinatorConfig, log: Logger): CoordinatorStore {
  const store = config.store ?? { kind: 'memory' };
  if (store.kind === 'memory') return new MemoryStore();
  return new PostgresStore({ url: store.url, log, sessionTimeoutMs: config.timing.leaderSessionTimeoutMs });
}
