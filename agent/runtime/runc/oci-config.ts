// Builds the OCI runtime config (config.json) for one dyno. Pure: the same spec gives the
// same config, which test/unit/agent/runtime/runc/oci-config.test.ts checks field by field.
//
// Starting point is `runc spec` 1.1's default (masked and read-only /proc paths, the mounts
// below), tightened for dynos: a non-root user, no new privileges, the memory, swap, CPU and
// pids limits from the dyno size, and a read-only /sys. The stack is a read-only overlay lower
// layer, so the rootfs itself may stay writable (the upper dir is the dyno's ephemeral disk).
// The network namespace is the one the agent prepared for the dyno (spec.network: joined by
// path, with the agent's resolv.conf bind-mounted read-only); without one (driver tests, the
// start benchmark's baseline) the dyno shares the host's.
import type { ContainerSpec } from '../driver.js';
import { DEFAULT_TTY_COLS, DEFAULT_TTY_ROWS } from '../attach-streams.js';
import { cfsQuotaUs, CPU_PERIOD_US, DYNO_CAPABILITIES, DYNO_OOM_SCORE_ADJ, MASKED_PATHS, READONLY_PATHS } from '../hardening.js';

const DEFAULT_CAPABILITIES = [...DYNO_CAPABILITIES];


export interface OciConfigOptions {
  cgroupsPath: string;
  /** The OCI `linux.seccomp` object (seccomp/profile.ts); absent = no filter. */
  seccomp?: Record<string, unknown>;
}

export function buildOciConfig(spec: ContainerSpec, options: OciConfigOptions): Record<string, unknown> {
  const { limits } = spec;
  const cpu: Record<string, number> = { shares: limits.cpuShares };
  if (limits.cpuQuotaPercent !== undefined) {
    cpu.period = CPU_PERIOD_US;
    cpu.quota = cfsQuotaUs(limits.cpuQuotaPercent);
  }
  return {
    ociVersion: '1.0.2',
    process: {
      // An attached dyno with a tty: runc makes the terminal and hands its master to conmon
      // (--console-socket); its first size is the caller's, so `stty size` is right at once.
      terminal: spec.stdio?.tty === true,
      ...(spec.stdio?.tty ? { consoleSize: { height: spec.stdio.rows ?? DEFAULT_TTY_ROWS, width: spec.stdio.cols ?? DEFAULT_TTY_COLS } } : {}),
      user: { uid: spec.user.uid, gid: spec.user.gid, additionalGids: [spec.user.gid] },
      args: spec.args,
      env: spec.env,
      cwd: spec.cwd,
      capabilities: {
        bounding: DEFAULT_CAPABILITIES,
        effective: DEFAULT_CAPABILITIES,
        permitted: DEFAULT_CAPABILITIES,
        inheritable: [],
        ambient: [],
      },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: limits.nofile, soft: limits.nofile }],
      noNewPrivileges: true,
      oomScoreAdj: DYNO_OOM_SCORE_ADJ,
    },
    root: { path: 'rootfs', readonly: false },
    hostname: spec.hostname,
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      ...(spec.network ? [{ destination: '/etc/resolv.conf', type: 'bind', source: spec.network.resolvConf, options: ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'] }] : []),
    ],
    linux: {
      cgroupsPath: options.cgroupsPath,
      resources: {
        devices: [{ allow: false, access: 'rwm' }],
        // swap = memory: the memory+swap ceiling equals the quota, so no swap is used.
        memory: { limit: limits.memoryBytes, swap: limits.memoryBytes },
        cpu,
        pids: { limit: limits.pidsLimit },
      },
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, ...(spec.network ? [{ type: 'network', path: spec.network.path }] : [])],
      ...(options.seccomp ? { seccomp: options.seccomp } : {}),
      maskedPaths: [...MASKED_PATHS],
      readonlyPaths: [...READONLY_PATHS],
    },
  };
}
