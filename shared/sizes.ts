// Default dyno sizes, after Heroku's table (public Heroku documentation: Standard-1X 512 MB,
// Standard-2X 1 GB, Performance-M 2.5 GB, Performance-L 14 GB). The coordinator resolves a
// size name into these limits and sends them in start_dyno, so the agent enforces exactly
// what the coordinator placed. Operators override the table in the coordinator's config.
// cpuShares follow the cgroup v1 convention (1024 = one share unit per 512 MB slice);
// pidsLimit is Heroku's published process limit per size.
import type { DynoSize } from './protocol.js';

export const DEFAULT_SIZES: Readonly<Record<string, DynoSize>> = Object.freeze({
  'eco': { name: 'eco', memoryMb: 512, cpuShares: 512, pidsLimit: 256 },
  'basic': { name: 'basic', memoryMb: 512, cpuShares: 512, pidsLimit: 256 },
  'standard-1x': { name: 'standard-1x', memoryMb: 512, cpuShares: 1024, pidsLimit: 256 },
  'standard-2x': { name: 'standard-2x', memoryMb: 1024, cpuShares: 2048, pidsLimit: 512 },
  'performance-m': { name: 'performance-m', memoryMb: 2560, cpuShares: 5120, pidsLimit: 16384 },
  'performance-l': { name: 'performance-l', memoryMb: 14336, cpuShares: 28672, pidsLimit: 32768 },
});

export function resolveSize(name: string, table: Readonly<Record<string, DynoSize>> = DEFAULT_SIZES): DynoSize | undefined {
  return Object.hasOwn(table, name) ? table[name] : undefined;
}
