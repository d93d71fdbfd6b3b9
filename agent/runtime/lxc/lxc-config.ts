// Builds the LXC container config (lxc.container.conf(5)) of one dyno. Pure: the same input
// gives the same text, which test/unit/agent/runtime/lxc/lxc-config.test.ts checks line by line.
//
// It mirrors the runc driver's OCI config (oci-config.ts) key for key, from hardening.ts:
// non-root init user, no new privileges, the dyno capability set, masked and read-only /proc
// and /sys paths, the seccomp filter, nofile, oom_score_adj, memory = memory+swap, CPU shares
// (and quota), pids. The network namespace is the one the agent prepared for the dyno
// (`lxc.namespace.share.net` with its /run/netns path: LXC 5 opens an absolute path as the
// namespace file), with the agent's resolv.conf bind-mounted read-only; without one (driver
// tests) `lxc.net.0.type = none` shares the host's. The rootfs is the dyno's overlay, mounted
// by the driver before lxc-execute runs.
import type { CgroupVersion } from '../../host/cgroups.js';
import type { ContainerLimits } from '../driver.js';
import { cfsQuotaUs, CPU_PERIOD_US, DYNO_CAPABILITIES, DYNO_OOM_SCORE_ADJ, MASKED_PATHS, READONLY_PATHS } from '../hardening.js';

export interface LxcConfigInput {
  hostname: string;
  rootfs: string;
  user: { uid: number; gid: number };
  cwd: string;
  limits: ContainerLimits;
  /** `lxc.cgroup.dir.container`: the dyno's cgroup, relative to each hierarchy. */
  cgroupPath: string;
  cgroupVersion: CgroupVersion;
  /** Files the driver wrote: the seccomp policy, the stop hook, LXC's own log. */
  seccompFile?: string;
  stopHook: string;
  logFile: string;
  /** The dyno's network namespace and resolv.conf (ContainerSpec.network). */
  network?: { path: string; resolvConf: string };
}

/** cgroup v2 cpu.weight from v1 shares, the conversion runc and crun use. */
export function sharesToWeight(shares: number): number {
  return 1 + Math.floor(((Math.max(2, Math.min(262144, shares)) - 2) * 9999) / 262142);
}

/** Files that are masked are bind-mounted over with /dev/null; directories get an empty,
 * read-only tmpfs. `optional` keeps a path this kernel lacks (no /proc/kcore here) from
 * failing the start. */
const MASKED_DIRS = new Set(['/proc/acpi', '/proc/asound', '/proc/scsi', '/sys/firmware']);

function cgroupLimits(l: ContainerLimits, version: CgroupVersion): string[] {
  const quota = l.cpuQuotaPercent === undefined ? undefined : cfsQuotaUs(l.cpuQuotaPercent);
  if (version === 2) {
    return [
      `lxc.cgroup2.memory.max = ${l.memoryBytes}`,
      'lxc.cgroup2.memory.swap.max = 0',
      `lxc.cgroup2.cpu.weight = ${sharesToWeight(l.cpuShares)}`,
      ...(quota === undefined ? [] : [`lxc.cgroup2.cpu.max = ${quota} ${CPU_PERIOD_US}`]),
      `lxc.cgroup2.pids.max = ${l.pidsLimit}`,
    ];
  }
  return [
    `lxc.cgroup.memory.limit_in_bytes = ${l.memoryBytes}`,
    // memory+swap = memory: no swap, as runc's `swap` = limit.
    `lxc.cgroup.memory.memsw.limit_in_bytes = ${l.memoryBytes}`,
    `lxc.cgroup.cpu.shares = ${l.cpuShares}`,
    ...(quota === undefined ? [] : [`lxc.cgroup.cpu.cfs_period_us = ${CPU_PERIOD_US}`, `lxc.cgroup.cpu.cfs_quota_us = ${quota}`]),
    `lxc.cgroup.pids.max = ${l.pidsLimit}`,
  ];
}

export function buildLxcConfig(c: LxcConfigInput): string {
  for (const p of [c.rootfs, c.cwd, c.cgroupPath, c.stopHook, c.logFile, c.seccompFile ?? '', c.network?.path ?? '', c.network?.resolvConf ?? '']) {
    // One key per line: a newline in a value would inject configuration.
    if (/[\n\r]/.test(p)) throw new Error(`LXC config value may not contain a newline: ${JSON.stringify(p)}`);
  }
  const caps = DYNO_CAPABILITIES.map((cap) => cap.replace(/^CAP_/, '').toLowerCase()).join(' ');
  const lines = [
    `lxc.uts.name = ${c.hostname}`,
    `lxc.rootfs.path = dir:${c.rootfs}`,
    ...(c.network ? [`lxc.namespace.share.net = ${c.network.path}`] : ['lxc.net.0.type = none']),
    `lxc.init.uid = ${c.user.uid}`,
    `lxc.init.gid = ${c.user.gid}`,
    `lxc.init.groups = ${c.user.gid}`,
    `lxc.init.cwd = ${c.cwd}`,
    'lxc.no_new_privs = 1',
    `lxc.cap.keep = ${caps}`,
    // No AppArmor profile, as in the runc and Docker dynos of this version (hosts without
    // AppArmor, like this one, could not load one anyway).
    'lxc.apparmor.profile = unconfined',
    ...(c.seccompFile ? [`lxc.seccomp.profile = ${c.seccompFile}`] : []),
    // proc:mixed remounts /proc/sys and /proc/sysrq-trigger read-only; sys:ro mounts /sys read-only.
    'lxc.mount.auto = proc:mixed sys:ro',
    'lxc.autodev = 1',
    'lxc.tty.max = 0',
    'lxc.pty.max = 16',
    'lxc.console.path = none',
    ...MASKED_PATHS.map((p) => MASKED_DIRS.has(p)
      ? `lxc.mount.entry = tmpfs ${p.slice(1)} tmpfs ro,nosuid,nodev,noexec,size=0,optional 0 0`
      : `lxc.mount.entry = /dev/null ${p.slice(1)} none bind,optional 0 0`),
    ...(c.network ? [`lxc.mount.entry = ${c.network.resolvConf} etc/resolv.conf none bind,ro,nosuid,nodev,noexec,create=file 0 0`] : []),
    ...READONLY_PATHS.filter((p) => p !== '/proc/sys' && p !== '/proc/sysrq-trigger')
      .map((p) => `lxc.mount.entry = ${p} ${p.slice(1)} none rbind,ro,optional 0 0`),
    `lxc.prlimit.nofile = ${c.limits.nofile}`,
    `lxc.proc.oom_score_adj = ${DYNO_OOM_SCORE_ADJ}`,
    // The dyno's cgroup sits where the runc driver puts it; LXC's monitor gets a sibling.
    // LXC wants these relative to the hierarchy roots.
    `lxc.cgroup.dir.container = ${c.cgroupPath.replace(/^\/+/, '')}`,
    `lxc.cgroup.dir.monitor = ${c.cgroupPath.replace(/^\/+/, '')}.monitor`,
    ...cgroupLimits(c.limits, c.cgroupVersion),
    // The stop hook runs after the dyno's processes are gone and before LXC removes the
    // cgroup: it saves the OOM counter, which would vanish with the cgroup.
    'lxc.hook.version = 1',
    `lxc.hook.stop = ${c.stopHook}`,
    `lxc.log.file = ${c.logFile}`,
    'lxc.log.level = WARN',
  ];
  return lines.join('\n') + '\n';
}
