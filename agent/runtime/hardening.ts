// The hardening every driver applies identically (runc's OCI config, LXC's config, Docker's
// HostConfig), in one place so the three cannot drift. The conformance suite checks the
// effect inside a dyno for each driver.
//
// Capabilities: a dyno runs as a non-root user with no new privileges, so its effective set is
// empty whatever the bounding set holds; the bounding set is still cut to the least a web
// process could want, after Docker's default list minus everything that touches files it does
// not own, other users' processes, raw packets or devices (CHOWN, DAC_OVERRIDE, FOWNER,
// FSETID, SETUID, SETGID, SETPCAP, SETFCAP, NET_RAW, MKNOD, SYS_CHROOT are gone).
export const DYNO_CAPABILITIES = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'] as const;

/** Paths hidden from the dyno (bind-mounted over with /dev/null or an empty tmpfs): runc
 * 1.1's `runc spec` default list plus /proc/sysrq-trigger's neighbours that leak host state. */
export const MASKED_PATHS = [
  '/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
  '/proc/timer_stats', '/proc/sched_debug', '/sys/firmware', '/proc/scsi',
] as const;

/** Paths the dyno may read but never write (runc's and Docker's default list). */
export const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'] as const;

/** The OOM score every dyno process starts with: the kernel picks dynos before the agent,
 * conmon and system daemons when the whole host runs out of memory. */
export const DYNO_OOM_SCORE_ADJ = 500;

/** CFS period for a CPU quota: the kernel's default (100 ms), as runc and Docker use. */
export const CPU_PERIOD_US = 100_000;

/** A CPU quota in percent of one core as a CFS quota per CPU_PERIOD_US (runc's formula);
 * 1 ms is the kernel's (and Docker's) smallest quota. */
export function cfsQuotaUs(cpuQuotaPercent: number): number {
  return Math.max(1000, Math.round((cpuQuotaPercent * CPU_PERIOD_US) / 100));
}

/** Largest dyno log the monitor keeps before truncating it (conmon's --log-size-max, Docker's
 * json-file max-size); the shipper follows the file and sends every line on long before. */
export const LOG_SIZE_MAX_BYTES = 16 * 1024 * 1024;
