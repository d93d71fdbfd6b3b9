// The narrow interface every container runtime implements (after Nomad's plugins/drivers).
// runc is the first driver; LXC and Docker come later behind the same interface.
// A driver owns nothing of the dyno's lifecycle policy: the Dyno object decides when to
// start, stop and report; the driver only does, within bounded time.
import type { ExitStatus } from '../../shared/protocol.js';

export interface ContainerLimits {
  memoryBytes: number;
  /** cgroup v1 cpu.shares (v2 cpu.weight is derived by the runtime). */
  cpuShares: number;
  pidsLimit: number;
  /** RLIMIT_NOFILE; Heroku documents 10,000 open files per dyno. */
  nofile: number;
}

export interface ContainerSpec {
  dynoId: string;
  /** Per-dyno directory the driver may fill (bundle, upper dir, logs, monitor files). */
  dir: string;
  stackDir: string;
  /** Extracted slug directory; it contains `app/` and becomes /app in the container. */
  slugDir: string;
  args: string[];
  env: string[];
  cwd: string;
  user: { uid: number; gid: number };
  hostname: string;
  limits: ContainerLimits;
}

/** Opaque to the agent except for persistence; each driver keeps what it needs to reattach. */
export interface DynoHandle {
  driver: string;
  containerId: string;
  dir: string;
  pid?: number;
  monitorPid?: number;
  cgroupPath?: string;
}

export interface DynoExit extends ExitStatus {
  /** From the cgroup's OOM counters, never inferred from exit code 137. */
  oomKilled: boolean;
}

export type ContainerStatus = 'created' | 'running' | 'stopped' | 'missing';

export interface RuntimeDriver {
  readonly name: string;
  /** Creates and starts the container; resolves once its process runs. */
  start(spec: ContainerSpec): Promise<DynoHandle>;
  /** Resolves when the container's main process has exited. Safe to call more than once. */
  wait(handle: DynoHandle): Promise<DynoExit>;
  /** Sends a signal to every process of the dyno. */
  signal(handle: DynoHandle, signal: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** SIGTERM to all, wait up to graceMs, then SIGKILL; `forced` tells whether the grace ran out. */
  stop(handle: DynoHandle, graceMs: number): Promise<{ forced: boolean; exit: DynoExit }>;
  /** Removes the container, its mounts and its directory. Idempotent. */
  destroy(handle: DynoHandle): Promise<void>;
  inspect(handle: DynoHandle): Promise<{ status: ContainerStatus; pid?: number }>;
}
