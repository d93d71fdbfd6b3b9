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
// - the log is Docker's json-file, capped like conmon's.
import type Dockerode from 'dockerode';
import type { ContainerSpec } from '../driver.js';
import { cfsQuotaUs, CPU_PERIOD_US, DYNO_CAPABILITIES, DYNO_OOM_SCORE_ADJ, LOG_SIZE_MAX_BYTES, MASKED_PATHS, READONLY_PATHS } from '../hardening.js';

/** Labels that find a dyno's container again (`docker ps --filter label=slipway.dyno=ID`). */
export const LABEL_DYNO = 'slipway.dyno';
export const LABEL_MANAGED = 'slipway.managed';

/** Docker's json-file `max-size`: conmon's cap, in the binary megabytes json-file parses
 * (units.RAMInBytes: 16m = 16 MiB). With `max-file` 1 the file is truncated at the cap, as
 * conmon's is. */
export const JSON_LOG_MAX_SIZE = `${Math.floor(LOG_SIZE_MAX_BYTES / (1024 * 1024))}m`;

/** One container per dyno id: the engine refuses a second container of the same name. */
export function containerName(dynoId: string): string {
  return `slipway-${dynoId}`;
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
    Cmd: spec.args,
    Env: spec.env,
    WorkingDir: spec.cwd,
    User: `${spec.user.uid}:${spec.user.gid}`,
    Hostname: spec.hostname,
    Labels: { [LABEL_DYNO]: spec.dynoId, [LABEL_MANAGED]: 'true' },
    Tty: false,
    OpenStdin: false,
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    HostConfig: {
      // Shared with the host, as with runc and LXC: the dyno listens on its $PORT on the
      // host's address. Per-dyno network namespaces come with the isolation issue.
      NetworkMode: 'host',
      IpcMode: 'private',
      CgroupParent: o.cgroupParent,
      Mounts: [{ Type: 'bind', Source: o.appDir, Target: '/app', ReadOnly: false, BindOptions: { Propagation: 'rprivate' } }],
      ReadonlyRootfs: false,
      Privileged: false,
      Init: false,
      AutoRemove: false,
      // The agent decides about restarts (Heroku's crash back-off), never the engine.
      RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
      SecurityOpt: ['no-new-privileges', ...(o.seccompProfile ? [`seccomp=${o.seccompProfile}`] : [])],
      CapDrop: ['ALL'],
      CapAdd: [...DYNO_CAPABILITIES],
      MaskedPaths: [...MASKED_PATHS],
      ReadonlyPaths: [...READONLY_PATHS],
      // swap = memory: the memory+swap ceiling equals the quota, so no swap is used.
      Memory: limits.memoryBytes,
      MemorySwap: limits.memoryBytes,
      OomKillDisable: false,
      ...cpu,
      PidsLimit: limits.pidsLimit,
      Ulimits: [{ Name: 'nofile', Soft: limits.nofile, Hard: limits.nofile }],
      OomScoreAdj: DYNO_OOM_SCORE_ADJ,
      LogConfig: { Type: 'json-file', Config: { 'max-size': JSON_LOG_MAX_SIZE, 'max-file': '1' } },
    },
  };
}
