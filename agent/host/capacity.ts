// The host's memory and CPU as the coordinator needs them for placement.
// allocatable = total - reserve (the agent, the OS and the page cache need the reserve);
// committed = sum of the memory quotas of the dynos holding resources. Admission never lets
// committed exceed allocatable: no silent overcommit.
import { cpus, loadavg } from 'node:os';
import si from 'systeminformation';
import type { Capacity } from '../../shared/protocol.js';
import type { CacheUsage } from '../slugs/store.js';

/** The capacity report lists at most this many cached slugs (the protocol's bound). */
export const MAX_REPORTED_SLUGS = 1000;

export interface HostMemory { totalBytes: number; usedBytes: number }

export async function readHostMemory(): Promise<HostMemory> {
  const m = await si.mem();
  // `available` excludes reclaimable page cache; used = what processes really hold.
  return { totalBytes: m.total, usedBytes: Math.max(0, m.total - m.available) };
}

export function allocatableBytes(totalBytes: number, reservedBytes: number): number {
  return Math.max(0, totalBytes - reservedBytes);
}

export function buildCapacity(input: {
  memory: HostMemory;
  reservedBytes: number;
  committedBytes: number;
  dynoCount: number;
  slugCache: CacheUsage;
  accepting: boolean;
  dynoMemory?: { id: string; quotaBytes: number; workingSetBytes: number; swapBytes: number }[];
}): Capacity {
  return {
    memory: {
      totalBytes: input.memory.totalBytes,
      reservedBytes: input.reservedBytes,
      allocatableBytes: allocatableBytes(input.memory.totalBytes, input.reservedBytes),
      committedBytes: input.committedBytes,
      usedBytes: input.memory.usedBytes,
    },
    cpu: { cores: cpus().length, load1: Math.round((loadavg()[0] ?? 0) * 100) / 100 },
    dynoCount: input.dynoCount,
    slugCache: {
      entries: input.slugCache.entries,
      bytes: input.slugCache.bytes,
      budgetBytes: input.slugCache.budgetBytes,
      freeBytes: input.slugCache.freeBytes,
      slugs: input.slugCache.slugs.slice(0, MAX_REPORTED_SLUGS).map((s) => ({ sha256: s.sha256, bytes: s.bytes })),
    },
    accepting: input.accepting,
    ...(input.dynoMemory ? { dynoMemory: input.dynoMemory.map((m) => ({ id: m.id, quotaBytes: m.quotaBytes, workingSetBytes: m.workingSetBytes, swapBytes: m.swapBytes })) } : {}),
  };
}
