// The narrow interface every container runtime implements (after Nomad's plugins/drivers):
// runc (agent/runtime/runc), LXC (agent/runtime/lxc) and Docker (agent/runtime/docker),
// chosen per host by the `runtime` config key. A driver owns nothing of the dyno's lifecycle
// policy: the Dyno object decides when to start, stop and report; the driver only does, and
// every call it makes into a runtime has a named time bound.
//
// What every driver guarantees, and test/integration/agent/runtime/fixtures/conformance.ts checks for
// each of them:
// - the rootfs is the stack (read-only, never written) under a per-dyno writable layer, with
//   the slug at /app (writable, reset on the next start: nothing is copied);
// - the limits of ContainerLimits, a non-root user, no new privileges, the minimal capability
//   set, the seccomp filter derived from Docker's default profile, masked and read-only /proc
//   and /sys paths;
// - a monitor outside the agent process keeps the dyno's output and exit status, so an agent
//   killed with SIGKILL leaves its dynos running, and recover() reattaches to them;
// - an OOM kill is known from the cgroup's OOM counters, never from exit code 137 alone.
import type { Readable, Writable } from 'node:stream';
import type { ExitStatus } from '../../shared/protocol.js';
import type { NetnsFactory } from '../network/host-network.js';

export const RUNTIME_NAMES = ['runc', 'lxc', 'docker'] as const;
export type RuntimeName = (typeof RUNTIME_NAMES)[number];

export interface ContainerLimits {
  memoryBytes: number;
  /** cgroup v1 cpu.shares (v2 cpu.weight is derived by the runtime). */
  cpuShares: number;
  /** Optional hard CPU cap, in percent of one core (100 = one core); absent = shares only. */
  cpuQuotaPercent?: number;
  pidsLimit: number;
  /** RLIMIT_NOFILE; Heroku documents 10,000 open files per dyno. */
  nofile: number;
}

export interface ContainerSpec {
  dynoId: string;
  /** Per-dyno directory the driver may fill (handle, bundle, upper dir, log, monitor files). */
  dir: string;
  /** The stack's name (Docker runs the image imported from it) and its root filesystem. */
  stackName: string;
  stackDir: string;
  /** Extracted slug directory; it contains `app/` and becomes /app in the container. */
  slugDir: string;
  args: string[];
  env: string[];
  cwd: string;
  user: { uid: number; gid: number };
  hostname: string;
  limits: ContainerLimits;
  /** The dyno's own network namespace, made by agent/network/host-network.ts before the start.
   * Absent: the host's namespace (driver unit tests and the start benchmark's baseline only;
   * the agent and `dyno run` always give one). */
  network?: ContainerNetwork;
  /** An attached one-off dyno (`slipway run`): its stdio goes to the agent (attach()), not to
   * the log. Absent: stdin is /dev/null and the output goes to the log (every other dyno). */
  stdio?: ContainerStdio;
}

/** The stdio of an attached dyno. */
export interface ContainerStdio {
  /** Keep stdin open for DynoAttach.stdin (else it is /dev/null). */
  stdin: boolean;
  /** A terminal (`slipway run -t`): stdout and stderr are one stream (stdout), resize works. */
  tty: boolean;
  /** The terminal's size at start (tty only). */
  cols?: number;
  rows?: number;
}

/**
 * The streams of a dyno started with ContainerSpec.stdio, from attach(). Nothing the dyno
 * prints before attach() is called is missed: start() connects them before the command runs.
 * They push back: while `stdout` or `stderr` is not read, the dyno blocks on its writes (what
 * waits is bounded by the runtime's pipes and socket buffers, never by the agent's memory).
 */
export interface DynoAttach {
  /** What the dyno writes to fd 1 (with a tty: everything the terminal prints). Ends once the
   * dyno's side is closed (it exited). */
  stdout: Readable;
  /** fd 2; with a tty it ends at once, empty. */
  stderr: Readable;
  /** To the dyno's stdin; end() closes it (the command reads EOF). Writes to a dyno that
   * started without stdio.stdin are dropped. */
  stdin: Writable;
  /** The terminal's new size (tty only; a no-op without one). */
  resize(cols: number, rows: number): Promise<void>;
  /** Lets go of the streams; the dyno lives on (a stop is the caller's). Idempotent. */
  close(): void;
}

export interface ContainerNetwork {
  /** Its name under /run/netns (Docker: the pause container that holds it is named after it). */
  netns: string;
  /** /run/netns/<netns>: runc's linux.namespaces path, LXC's lxc.namespace.share.net. */
  path: string;
  /** Bind-mounted read-only at /etc/resolv.conf (agent/network/resolv.ts). */
  resolvConf: string;
}

/**
 * What the agent keeps of a started dyno. start() persists it in `<dir>/handle.json`
 * (handle-file.ts) before it resolves, and recover() reads it back after an agent restart.
 * `data` is the driver's own, opaque to everyone else.
 */
export interface DynoHandle {
  driver: RuntimeName;
  dynoId: string;
  /** runc and LXC: `slipway-<dynoId>`; Docker: the engine's container id. */
  containerId: string;
  dir: string;
  /** The dyno's pid 1, as the host sees it. */
  pid?: number;
  /** The monitor that holds stdio and the exit status (conmon); Docker's is containerd's shim. */
  monitorPid?: number;
  /** The dyno's cgroup, relative to each v1 hierarchy or to the v2 root. */
  cgroupPath?: string;
  startedAt: string;
  data?: Record<string, string | number | boolean>;
}

export interface DynoExit extends ExitStatus {
  /** From the cgroup's OOM counters, never inferred from exit code 137. */
  oomKilled: boolean;
}

export type ContainerStatus = 'created' | 'running' | 'stopped' | 'missing';

/** A dyno's resource use, read from its cgroup. */
export interface DynoStats {
  /** The cgroup's memory usage, page cache included. */
  memoryUsageBytes: number;
  /** usage minus inactive file cache: what Heroku's R14 and the kubelet count. */
  workingSetBytes: number;
  rssBytes: number;
  swapBytes: number;
  cpuUsageNs: number;
  pids: number;
  oomKills: number;
  /** The cgroup's highest memory usage since it was made (v1 memory.max_usage_in_bytes, v2
   * memory.peak, Linux 5.19+); absent when the kernel has no such file. */
  peakMemoryBytes?: number;
  /** CPU periods in which the dyno was throttled at its CPU cap (cpu.stat nr_throttled);
   * absent without the cpu controller's stats. */
  throttledPeriods?: number;
}

/** Where a dyno's output is and how it is written. */
export interface LogSource {
  path: string;
  /** k8s-file: conmon's `TIMESTAMP stdout|stderr F|P text`; docker-json: json-file lines. */
  format: 'k8s-file' | 'docker-json';
}

export interface RecoveredDyno {
  handle: DynoHandle;
  /** False when the dyno exited while the agent was away: wait() then resolves at once. */
  running: boolean;
}

export interface RuntimeDriver {
  readonly name: RuntimeName;
  /** Creates and starts the container; resolves once its process runs and the handle is persisted. */
  start(spec: ContainerSpec): Promise<DynoHandle>;
  /**
   * Reattaches to a dyno started by an earlier agent process from what start() persisted in
   * `dir`. undefined: nothing recoverable is there (never started, or half created); the
   * caller then destroys what is left.
   */
  recover(dir: string): Promise<RecoveredDyno | undefined>;
  /** Resolves when the container's main process has exited. Safe to call more than once. */
  wait(handle: DynoHandle): Promise<DynoExit>;
  /** Sends a signal to every process of the dyno. */
  signal(handle: DynoHandle, signal: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** SIGTERM to all, wait up to graceMs, then SIGKILL; `forced` tells whether the grace ran out. */
  stop(handle: DynoHandle, graceMs: number): Promise<{ forced: boolean; exit: DynoExit }>;
  /** Removes the container, its mounts, its cgroup and its directory. Idempotent. */
  destroy(handle: DynoHandle): Promise<void>;
  inspect(handle: DynoHandle): Promise<{ status: ContainerStatus; pid?: number }>;
  /** undefined once the dyno's cgroup is gone. */
  stats(handle: DynoHandle): Promise<DynoStats | undefined>;
  log(handle: DynoHandle): LogSource;
  /**
   * The streams of `handle`, started by this process with ContainerSpec.stdio; each start
   * gives them once. Throws SlipwayError RUNTIME_ATTACH_UNAVAILABLE for any other handle (a
   * recovered one: the streams went with the agent process that started it).
   */
  attach(handle: DynoHandle): DynoAttach;
  /** How this runtime's dynos get a network namespace, when it cannot join one by path (Docker:
   * a pause container holds it). Absent: agent/network/host-network.ts makes it (`ip netns add`). */
  netnsFactory?(): NetnsFactory;
}
