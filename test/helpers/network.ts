// Helpers for tests of the dyno network (agent/network/): a bridge, subnet and nftables table
// of the test's own (so that tests running at once never share one), and the leftover check:
// no namespace, veth, lease, route or table of the test's bridge is left behind.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { randomBytes, randomInt } from 'node:crypto';
import { join } from 'node:path';
import { HostNetwork, NETNS_DIR, type HostNetworkSettings } from '../../agent/network/host-network.js';
import { quietLogger } from './host.js';

/** A /24 in 100.64.0.0/10 outside the agent's default 100.72.0.0/16. */
export function testSubnet(): string {
  let b = 72;
  while (b === 72) b = randomInt(64, 128);
  return `100.${b}.${randomInt(0, 256)}.0/24`;
}

export function testNetworkSettings(dir: string, over: Partial<HostNetworkSettings> = {}): HostNetworkSettings {
  const id = randomBytes(3).toString('hex');
  return {
    bridge: `swt${id}`, subnet: testSubnet(), table: `swt${id}`,
    metadataAddresses: ['169.254.169.254', '169.254.170.2', 'fd00:ec2::254'],
    poolSize: 0, dir: join(dir, 'network'), log: quietLogger(), ...over,
  };
}

export function netnsOf(bridge: string): string[] {
  return existsSync(NETNS_DIR) ? readdirSync(NETNS_DIR).filter((n) => n.startsWith(`${bridge}-`)) : [];
}

export function bridgePorts(bridge: string): string[] {
  try {
    return readdirSync(`/sys/class/net/${bridge}/brif`);
  } catch {
    return [];
  }
}

export function tableExists(table: string): boolean {
  try {
    execFileSync('nft', ['list', 'table', 'inet', table], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function tableText(table: string): string {
  return execFileSync('nft', ['list', 'table', 'inet', table], { encoding: 'utf8' });
}

/** What a test's network left: namespaces, bridge ports, the bridge, the table. */
export function networkLeftovers(s: Pick<HostNetworkSettings, 'bridge' | 'table'>): string[] {
  return [
    ...netnsOf(s.bridge).map((n) => `netns ${n}`),
    ...bridgePorts(s.bridge).map((p) => `veth ${p}`),
    ...(existsSync(`/sys/class/net/${s.bridge}`) ? [`bridge ${s.bridge}`] : []),
    ...(tableExists(s.table) ? [`table ${s.table}`] : []),
  ];
}

/** Removes everything of the test's bridge, whatever state the test left it in: Docker's
 * pause containers of the bridge too, when an engine answers. */
export async function destroyTestNetwork(s: HostNetworkSettings): Promise<void> {
  try {
    const rows = execFileSync('docker', ['ps', '-a', '--filter', 'label=slipway.pause', '--format', '{{.Names}} {{.Label "slipway.pause"}}'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
    const names = rows.split('\n').map((l) => l.split(' ')).filter(([, ns]) => ns?.startsWith(`${s.bridge}-`)).map(([n]) => n!);
    if (names.length > 0) execFileSync('docker', ['rm', '-f', ...names], { stdio: 'ignore', timeout: 30_000 });
  } catch { /* no engine */ }
  await new HostNetwork(s).destroy().catch(() => undefined);
  for (const n of netnsOf(s.bridge)) {
    try { execFileSync('ip', ['netns', 'del', n], { stdio: 'ignore' }); } catch { /* gone */ }
  }
  try { execFileSync('ip', ['link', 'del', s.bridge], { stdio: 'ignore' }); } catch { /* gone */ }
  try { execFileSync('nft', ['delete', 'table', 'inet', s.table], { stdio: 'ignore' }); } catch { /* gone */ }
}

/** An agent config file with a network of the test's own (`--config FILE` for `serve`, `dyno
 * run` and `cleanup`): agents of tests running at once must not share a bridge or a table. */
export async function testAgentConfig(dir: string, extra: Record<string, unknown> = {}, poolSize = 0): Promise<{ file: string; network: HostNetworkSettings }> {
  const network = testNetworkSettings(dir, { poolSize });
  const file = join(dir, `agent-${network.bridge}.json`);
  const { writeFile } = await import('node:fs/promises');
  await writeFile(file, JSON.stringify({ network: { bridge: network.bridge, subnet: network.subnet, table: network.table, poolSize }, ...extra }));
  return { file, network: { ...network, dir: join(dir, 'state', 'network') } };
}

/** The dyno namespaces and bridge ports left on a test's bridge (the bridge and table stay while its agent runs). */
export function dynoNetworksLeft(bridge: string): string[] {
  return [...netnsOf(bridge).map((n) => `netns ${n}`), ...bridgePorts(bridge).map((p) => `veth ${p}`)];
}
