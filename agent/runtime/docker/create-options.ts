// The Docker Engine API (v1.41) create body for one dyno. Pure: the same spec gives the same
// body, which test/unit/agent/runtime/docker/create-options.test.ts checks field by field.
//
// The hardening and limits are runc's (runc/oci-config.ts) expressed as HostConfig, from the
// same constants in hardening.ts so that the drivers cannot drift. What differs:
// - the rootfs is the stack's image (stack-image.ts) under the container's own writable layer,
//   which Docker creates per container and deletes with it;
// - /app is a bind mount of an overlay the driver mounts on the host (slug's app/ below, a
//   per-dyno upper dir above), so /app is writable, reset on the next start, and the slug is
//   never copied or written;
// - the log is Docker's json-file, capped like conmon's;
// - the network: Docker cannot join a namespace by path, so a dyno with its own network
//   (spec.network) joins the pause container that holds it (`NetworkMode: container:<pause>`,
//   pause.ts). Docker then refuses a Hostname of the dyno's own and gives it the pause
//   container's (which pause.ts sets to the dyno's). The pause container has none of the
//   engine's networking, so the engine binds no resolv.conf or hosts file into the dyno (its
//   init layer leaves empty ones): /etc/resolv.conf is the agent's file
//   (agent/network/resolv.ts) and /etc/hosts the stack's own (stack-image.ts stackHostsFile),
//   both bound read-only, which is what runc and LXC dynos see. Without spec.network, the
//   host's network and the engine's files (driver tests, the start benchmark's baseline).
import type Dockerode from 'dockerode';
import type { ContainerSpec } from '../driver.js';
import { DEFAULT_TTY_COLS, DEFAULT_TTY_ROWS } from '../attach-streams.js';
import { cfsQuotaUs, CPU_PERIOD_US, DYNO_CAPABILITIES, DYNO_OOM_SCORE_ADJ, LOG_SIZE_MAX_BYTES, MASKED_PATHS, READONLY_PATHS } from '../hardening.js';

/** Labels that find a dyno's container again (`docker ps --filter label=slipway.dyno=ID`). */
export const LABEL_DYNO = 'slipway.dyno';
export const LABEL_MANAGED = 'slipway.managed';
/** The network namespace a pause container holds (pause.ts), by its name under /run/netns. */
export const LABEL_PAUSE = 'slipway.pause';

/** Docker's json-file `max-size`: conmon's cap, in the binary megabytes json-file parses
 * (units.RAMInBytes: 16m = 16 MiB). With `max-file` 1 the file is truncated at the cap, as
 * conmon's is. */
export const JSON_LOG_MAX_SIZE = `${Math.floor(LOG_SIZE_MAX_BYTES / (1024 * 1024))}m`;

/**
 * Put in front of a tty dyno's args. Docker 20.10 (Debian 12's) creates the terminal 0x0 and
 * sizes it only on the resize the driver sends after the start, so a command that asks for the
 * size at once (`stty size`, a full-screen program) would race it. This waits for a size, at
 * most 200 x 10 ms, then execs the dyno's own args, so the process tree is the usual one from
 * there on. (busybox's stty prints nothing on a 0x0 terminal, and exits 0; coreutils' prints
 * `0 0`: both mean no size yet.) Where the engine sized it at creation the loop ends at once;
 * a stack without stty gets no wait.
 */
export const TTY_SIZE_WAIT = [
  '/bin/sh', '-c',
  'i=0; if command -v stty >/dev/null 2>&1; then while s=$(stty size 2>/dev/null); { [ -z "$s" ] || [ "$s" = "0 0" ]; } && [ $i -lt 200 ]; do sleep 0.01; i=$((i+1)); done; fi; unset i s; exec "$@"',
  'sh',
];

/** One container per dyno id: the engine refuses a second container of the same name. */
export function containerName(dynoId: string): string {
  return `slipway-${dynoId}`;
}

/** The pause container that holds network namespace `netns` (pause.ts). The dot keeps it apart
 * from every dyno's container: dyno ids are [a-z0-9-] (shared/protocol.ts DynoId), so no dyno
 * id can make `slipway-pause.<netns>`. */
export function pauseContainerName(netns: string): string {
  return `slipway-pause.${netns}`;
}

export interface CreateOptionsInput {
  /** The stack's image reference (stack-image.ts). */
  image: string;
  /** Parent cgroup of every dyno; with the cgroupfs driver the container's cgroup is
   * `<cgroupParent>/<container id>` in every hierarchy. */
  cgroupParent: string;
  /** Host path of the /app overlay mount. */
  appDir: string;
  /** A seccomp profile in Docker's JSON format; absent = the engine's default profile. */
  seccompProfile?: string;
  /** With spec.network: the stack's /etc/hosts on the host (stack-image.ts stackHostsFile);
   * absent when the stack has none. */
  hostsFile?: string;
}

/** What every container the agent makes has, dynos and pause containers alike: no privileges,
 * no engine restarts or init, no new privileges, the seccomp profile, every capability dropped,
 * masked and read-only /proc and /sys paths. */
export function hardenedHostConfig(seccompProfile: string | undefined): Dockerode.HostConfig {
  return {
    Privileged: false,
    Init: false,
    AutoRemove: false,
    // The agent decides about restarts (Heroku's crash back-off), never the engine.
    RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
    SecurityOpt: ['no-new-privileges', ...(seccompProfile ? [`seccomp=${seccompProfile}`] : [])],
    CapDrop: ['ALL'],
    MaskedPaths: [...MASKED_PATHS],
    ReadonlyPaths: [...READONLY_PATHS],
  };
}

/** The create body (the container name goes in the query, see driver.ts). */
export function buildCreateOptions(spec: ContainerSpec, o: CreateOptionsInput): Dockerode.ContainerCreateOptions {
  const { limits } = spec;
  const cpu: Dockerode.HostConfig = { CpuShares: limits.cpuShares };
  if (limits.cpuQuotaPercent !== undefined) {
    cpu.CpuPeriod = CPU_PERIOD_US;
    cpu.CpuQuota = cfsQuotaUs(limits.cpuQuotaPercent);
  }
  return {
    Image: o.image,
    // An imported stack has no entrypoint; [] makes sure an image's own one is never prepended.
    Entrypoint: [],
    Cmd: spec.stdio?.tty ? [...TTY_SIZE_WAIT, ...spec.args] : spec.args,
    Env: spec.env,
    WorkingDir: spec.cwd,
    User: `${spec.user.uid}:${spec.user.gid}`,
    // With a network of its own the hostname is the pause container's (see the header).
    ...(spec.network ? {} : { Hostname: spec.hostname }),
    Labels: { [LABEL_DYNO]: spec.dynoId, [LABEL_MANAGED]: 'true' },
    // An attached dyno (`slipway run`): the driver attaches before it starts the container, as
    // `docker run -i` does; StdinOnce makes the end of the attach's stdin the container's EOF.
    Tty: spec.stdio?.tty === true,
    OpenStdin: spec.stdio?.stdin === true,
    StdinOnce: spec.stdio?.stdin === true,
    AttachStdin: spec.stdio?.stdin === true,
    AttachStdout: spec.stdio !== undefined,
    AttachStderr: spec.stdio !== undefined,
    HostConfig: {
      NetworkMode: spec.network ? `container:${pauseContainerName(spec.network.netns)}` : 'host',
      IpcMode: 'private',
      CgroupParent: o.cgroupParent,
      Mounts: [
        { Type: 'bind', Source: o.appDir, Target: '/app', ReadOnly: false, BindOptions: { Propagation: 'rprivate' } },
        ...(spec.network ? [readOnlyFile(spec.network.resolvConf, '/etc/resolv.conf')] : []),
        ...(spec.network && o.hostsFile ? [readOnlyFile(o.hostsFile, '/etc/hosts')] : []),
      ],
      ReadonlyRootfs: false,
      ...hardenedHostConfig(o.seccompProfile),
      CapAdd: [...DYNO_CAPABILITIES],
      // swap = memory: the memory+swap ceiling equals the quota, so no swap is used.
      Memory: limits.memoryBytes,
      MemorySwap: limits.memoryBytes,
      OomKillDisable: false,
      ...cpu,
      PidsLimit: limits.pidsLimit,
      Ulimits: [{ Name: 'nofile', Soft: limits.nofile, Hard: limits.nofile }],
      OomScoreAdj: DYNO_OOM_SCORE_ADJ,
      // An attached dyno's output is the attach's only (Heroku's `heroku run` output is not in
      // the app's logs).
      LogConfig: spec.stdio ? { Type: 'none', Config: {} } : { Type: 'json-file', Config: { 'max-size': JSON_LOG_MAX_SIZE, 'max-file': '1' } },
      // Engines from 23.0 (API 1.42) size the terminal at creation (moby#43593); 20.10 ignores
      // this on Linux and the driver resizes right after the start (see TTY_SIZE_WAIT).
      ...(spec.stdio?.tty ? { ConsoleSize: [spec.stdio.rows ?? DEFAULT_TTY_ROWS, spec.stdio.cols ?? DEFAULT_TTY_COLS] } : {}),
    },
  };
}

function readOnlyFile(source: string, target: string): Dockerode.MountSettings {
  return { Type: 'bind', Source: source, Target: target, ReadOnly: true, BindOptions: { Propagation: 'rprivate' } };
}
