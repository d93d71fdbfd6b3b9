// What a dyno's owner (dyno.ts) is given: the runtime, the stores, the host's settings, and the
// optional parts (records, logs, cycling) that unit tests leave out. DynoManagerOptions
// (manager.ts) is this minus the per-dyno listener, plus the manager's own settings.
import type { DynoStateName, DynoStatus } from '../../shared/protocol.js';
import type { Logger } from '../../shared/log.js';
import type { RuntimeDriver } from '../runtime/driver.js';
import type { StackStore } from '../stacks/stacks.js';
import type { Clock } from '../lib/clock.js';
import type { CyclingSettings } from './cycling-hook.js';
import type { DynoRecords } from './dyno-records.js';
import type { DynoLogs } from './logs-hook.js';
import type { PortAllocator } from './ports.js';
import type { HostNetwork } from '../network/host-network.js';
import type { RestartPolicyOptions } from './restart-policy.js';
import type { MemoryWatchSettings } from './memory-watch-hook.js';
import type { DecisionSink } from '../diagnostics/decisions.js';
import type { ExitRecords } from './exit-records.js';
import type { AgentMetrics } from '../metrics/agent-metrics.js';
import type { RendezvousDialer } from '../link/rendezvous-dial.js';

export interface SlugProvider {
  /** Pins the slug for `pin` (the dyno id) until unpin(): it cannot be evicted meanwhile. */
  ensure(ref: { url: string; sha256: string }, options: { pin: string }): Promise<{ path: string }>;
  unpin(sha256: string, owner: string): void;
}

/** What a dyno uses of the host network. */
export type DynoNetworks = Pick<HostNetwork, 'acquire' | 'refill' | 'claim' | 'route' | 'unroute' | 'release' | 'resolvConfFile'>;

export interface DynoSettings {
  dynosDir: string;
  /** Address the dyno's endpoint is reachable at: reported to the coordinator; the router's
   * connection to it and the dyno's host port is DNATed to the dyno (agent/network/ruleset.ts).
   * The readiness probe goes to the dyno's own address. */
  address: string;
  dynoUser: { uid: number; gid: number };
  bootTimeoutMs: number;
  nofile: number;
}

export interface DynoDeps {
  driver: RuntimeDriver;
  slugs: SlugProvider;
  stacks: Pick<StackStore, 'resolve'>;
  ports: Pick<PortAllocator, 'reserve' | 'release' | 'claim'>;
  /** Each container's own network namespace (agent/network/host-network.ts). Absent (unit tests
   * with the fake driver): the host's. */
  network?: DynoNetworks;
  settings: DynoSettings;
  log: Logger;
  /** Called synchronously on every transition, in order. */
  onTransition: (from: DynoStateName | null, status: DynoStatus) => void;
  /** Restart delays, cycling, the boot deadline and the R14 rate limit run on it; default the
   * real clock (clock.ts). */
  clock?: Clock;
  /** Crash restart timing (default DEFAULT_RESTART_POLICY); tests shorten it. */
  restartPolicy?: RestartPolicyOptions;
  /** R14/R15 (memory-policy.ts) and the hard limit (container-spec.ts); default DEFAULT_MEMORY_SETTINGS. */
  memory?: MemoryWatchSettings;
  /** Heroku's daily cycling (cycling-hook.ts). Absent: never cycled. */
  cycling?: CyclingSettings;
  /** Where the dyno's record is kept for re-adoption after an agent restart (records-hook.ts,
   * dyno-records.ts); without it nothing is persisted (unit tests). */
  records?: DynoRecords;
  /** Ships the dyno's output and the agent's lines about it (logs-hook.ts, log-shipper.ts). */
  logs?: DynoLogs;
  /** The agent's reasons (agent/diagnostics/decisions.ts): restarts, kills, re-adoptions and
   * admissions are recorded where they are decided. Absent: not recorded (unit tests). */
  decisions?: DecisionSink;
  /** The last exits of each dyno (exit-records.ts, exit-record-hook.ts). Absent: each exit's
   * summary still rides in its `crashed` event, but none is kept. */
  exits?: ExitRecords;
  /** The agent's Prometheus metrics (agent/metrics/dyno-metrics-hook.ts). Absent: not counted. */
  metrics?: AgentMetrics;
  /** Dials an attached one-off's rendezvous leg (attach-hook.ts). Absent: a spec with `attach`
   * is refused (the agent then does not announce the feature). */
  attach?: RendezvousDialer;
}
