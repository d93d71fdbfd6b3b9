// The host commands of the network, each bounded in time (agent/lib/exec.ts): iproute2 in batch
// mode (one process for a whole setup or teardown: spawning is most of the cost, ~2-4 ms a
// process here) and nft reading its script from stdin.
import { execBounded, type ExecResult } from '../lib/exec.js';

/** iproute2 and nft calls are kernel round trips; 10 s means something is wedged. */
export const NET_CALL_TIMEOUT_MS = 10_000;

export interface NetCommands {
  /** `ip [-n NETNS] [-force] -batch -`: with `force`, every line runs and the call fails only
   * when one did (teardown: what is already gone is no reason to stop). */
  ip(lines: readonly string[], options?: { netns?: string; force?: boolean }): Promise<ExecResult>;
  /** `nft -f -`: one transaction; any error aborts all of it. */
  nft(script: string): Promise<ExecResult>;
  /** `nft -j ...`: JSON output of a list command. */
  nftJson(args: readonly string[]): Promise<unknown>;
}

export function hostCommands(paths: { ip?: string; nft?: string } = {}): NetCommands {
  const ip = paths.ip ?? 'ip';
  const nft = paths.nft ?? 'nft';
  return {
    ip: (lines, o = {}) => execBounded(ip, [...(o.netns ? ['-n', o.netns] : []), ...(o.force ? ['-force'] : []), '-batch', '-'], {
      timeoutMs: NET_CALL_TIMEOUT_MS, input: lines.join('\n') + '\n', allowFailure: o.force ?? false,
    }),
    nft: (script) => execBounded(nft, ['-f', '-'], { timeoutMs: NET_CALL_TIMEOUT_MS, input: script }),
    nftJson: async (args) => JSON.parse((await execBounded(nft, ['-j', ...args], { timeoutMs: NET_CALL_TIMEOUT_MS })).stdout || '{}') as unknown,
  };
}
