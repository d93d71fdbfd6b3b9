// A dyno's resource use, read from its cgroup files (both hierarchies; see cgroups.ts).
//
// Memory follows the kubelet: the working set is usage minus the inactive file cache, the
// memory the kernel cannot reclaim without hurting the dyno; it is what Heroku's R14/R15
// compare with the quota (DESIGN.md: "RSS + swap, not page cache" is the closest a cgroup
// gets). Any single file may be missing (no swap accounting, the pids controller not mounted,
// a kernel older than the oom_kill counter): that field reads 0. Only a cgroup that is gone
// as a whole reads as undefined.
//
// Every read is one small procfs-style read served from kernel memory, so none is bounded by a
// timeout (contrast runtime calls, agent/lib/exec.ts).
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { DynoStats } from '../runtime/driver.js';
import { SlipwayError } from '../../shared/errors.js';
import type { CgroupVersion } from './cgroups.js';

/** errno codes that mean "this file is not there": absent (ENOENT) or the cgroup is being
 * removed under us (ENODEV). Anything else (EACCES, EIO) is a fault worth surfacing. */
const ABSENT = new Set(['ENOENT', 'ENODEV']);

/** A file's text, or undefined when the file is absent. */
async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if (ABSENT.has((err as NodeJS.ErrnoException).code ?? '')) return undefined;
    throw new SlipwayError('INTERNAL', `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/** A single-value file (`memory.current`, `pids.current`); 0 when absent or not a number
 * (`max` never appears in the files read here). */
export function parseSingle(text: string | undefined): number {
  const n = Number((text ?? '').trim());
  return Number.isFinite(n) && n > 0 ? n : 0;
}

/** A flat-keyed file (`memory.stat`, `memory.events`, `cpu.stat`): `key value` per line. */
export function parseFlatKeyed(text: string | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of (text ?? '').split('\n')) {
    const sp = line.indexOf(' ');
    if (sp <= 0) continue;
    const n = Number(line.slice(sp + 1).trim());
    if (Number.isFinite(n)) out.set(line.slice(0, sp), n);
  }
  return out;
}

function floor0(n: number): number {
  return n > 0 ? n : 0;
}

/**
 * The dyno's stats from its cgroup, or undefined when the cgroup does not exist (any more).
 * `cgroupPath` is relative to each v1 hierarchy or to the v2 root, as in DynoHandle.
 */
export async function readDynoStats(cgroupPath: string, version: CgroupVersion, root = '/sys/fs/cgroup'): Promise<DynoStats | undefined> {
  return version === 2 ? readV2(cgroupPath, root) : readV1(cgroupPath, root);
}

/** Whether a read came back absent because the whole cgroup is gone: checked only then, and
 * after the reads, so a cgroup removed half-way through reads as gone, not as zeros. */
async function gone(texts: (string | undefined)[], dir: string): Promise<boolean> {
  if (!texts.includes(undefined)) return false;
  try {
    await stat(dir);
    return false;
  } catch (err) {
    if (ABSENT.has((err as NodeJS.ErrnoException).code ?? '')) return true;
    throw new SlipwayError('INTERNAL', `cannot stat ${dir}: ${(err as Error).message}`, { cause: err });
  }
}

async function readV1(cgroupPath: string, root: string): Promise<DynoStats | undefined> {
  // The memory hierarchy decides whether the dyno's cgroup exists: every dyno has one there
  // (its memory limit), and the kill/OOM accounting lives there.
  const mem = join(root, 'memory', cgroupPath);
  const texts = await Promise.all([
    readOptional(join(mem, 'memory.usage_in_bytes')),
    readOptional(join(mem, 'memory.stat')),
    readOptional(join(mem, 'memory.memsw.usage_in_bytes')),
    readOptional(join(mem, 'memory.oom_control')),
    readOptional(join(root, 'cpuacct', cgroupPath, 'cpuacct.usage')),
    readOptional(join(root, 'pids', cgroupPath, 'pids.current')),
  ]);
  if (await gone(texts, mem)) return undefined;
  const [usageText, statText, memswText, oomText, cpuText, pidsText] = texts;
  const usage = parseSingle(usageText);
  const memStat = parseFlatKeyed(statText);
  // total_* are hierarchical (this group and its children); the plain keys are local only.
  // total_swap exists only with swap accounting (memsw); memsw minus usage is the same number
  // computed from the two counters, for a kernel whose memory.stat omits it.
  const memsw = memswText === undefined ? undefined : parseSingle(memswText);
  const swap = memStat.get('total_swap') ?? (memsw === undefined ? 0 : floor0(memsw - usage));
  return {
    memoryUsageBytes: usage,
    workingSetBytes: floor0(usage - (memStat.get('total_inactive_file') ?? 0)),
    rssBytes: memStat.get('total_rss') ?? 0,
    swapBytes: swap,
    cpuUsageNs: parseSingle(cpuText),
    pids: parseSingle(pidsText),
    oomKills: parseFlatKeyed(oomText).get('oom_kill') ?? 0,
  };
}

async function readV2(cgroupPath: string, root: string): Promise<DynoStats | undefined> {
  const dir = join(root, cgroupPath);
  const texts = await Promise.all([
    readOptional(join(dir, 'memory.current')),
    readOptional(join(dir, 'memory.stat')),
    readOptional(join(dir, 'memory.swap.current')),
    readOptional(join(dir, 'memory.events')),
    readOptional(join(dir, 'cpu.stat')),
    readOptional(join(dir, 'pids.current')),
  ]);
  if (await gone(texts, dir)) return undefined;
  const [currentText, statText, swapText, eventsText, cpuText, pidsText] = texts;
  const usage = parseSingle(currentText);
  const memStat = parseFlatKeyed(statText);
  // v2's memory.stat and memory.events are hierarchical already; cpu.stat is in microseconds.
  return {
    memoryUsageBytes: usage,
    workingSetBytes: floor0(usage - (memStat.get('inactive_file') ?? 0)),
    rssBytes: memStat.get('anon') ?? 0,
    swapBytes: parseSingle(swapText),
    cpuUsageNs: (parseFlatKeyed(cpuText).get('usage_usec') ?? 0) * 1000,
    pids: parseSingle(pidsText),
    oomKills: parseFlatKeyed(eventsText).get('oom_kill') ?? 0,
  };
}
