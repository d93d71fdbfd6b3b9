// Docker's engine sets the iptables FORWARD policy to DROP and sends forwarded traffic through
// its DOCKER-USER chain first. A drop there is final whatever the agent's own table says, so
// on a host where the engine runs (or ran: the policy stays), router -> dyno and dyno egress
// both fail without an accept for the dyno bridge (measured: DESIGN.md). These rules accept
// the bridge's traffic in DOCKER-USER and leave everything to the agent's table
// (ruleset.ts), which drops what dynos may not reach: an accept ends only that chain, the
// drops of another table still apply. Traffic from the bridge into Docker's own bridges is left
// to Docker's rules (RETURN), so that a dyno cannot reach the engine's containers through it.
// Applied at start and re-checked with the table (host-network.ts), idempotently (`-C`).
import { execBounded } from '../lib/exec.js';
import { NET_CALL_TIMEOUT_MS } from './commands.js';

export function dockerUserRules(bridge: string): string[][] {
  return [
    ['-i', bridge, '-o', 'docker+', '-j', 'RETURN'],
    ['-i', bridge, '-o', 'br-+', '-j', 'RETURN'],
    ['-i', bridge, '-j', 'ACCEPT'],
    ['-o', bridge, '-j', 'ACCEPT'],
  ];
}

/** Adds the accepts to DOCKER-USER when the chain exists; false when it does not (no Docker). */
export async function acceptInDockerUser(bridge: string, iptables = 'iptables'): Promise<boolean> {
  const run = (args: string[]) => execBounded(iptables, ['-w', '5', ...args], { timeoutMs: NET_CALL_TIMEOUT_MS, allowFailure: true });
  if ((await run(['-t', 'filter', '-n', '-L', 'DOCKER-USER'])).code !== 0) return false;
  // Inserted in reverse at the top, so that they end up in the order listed, before Docker's RETURN.
  const rules = dockerUserRules(bridge);
  for (const rule of [...rules].reverse()) {
    if ((await run(['-t', 'filter', '-C', 'DOCKER-USER', ...rule])).code !== 0) await run(['-t', 'filter', '-I', 'DOCKER-USER', '1', ...rule]);
  }
  return true;
}

export async function removeFromDockerUser(bridge: string, iptables = 'iptables'): Promise<void> {
  const run = (args: string[]) => execBounded(iptables, ['-w', '5', ...args], { timeoutMs: NET_CALL_TIMEOUT_MS, allowFailure: true });
  for (const rule of dockerUserRules(bridge)) {
    while ((await run(['-t', 'filter', '-D', 'DOCKER-USER', ...rule])).code === 0) { /* every copy */ }
  }
}
