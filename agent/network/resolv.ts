// The /etc/resolv.conf each dyno gets (bind-mounted read-only). A dyno has its own network
// namespace, so a resolver on the host's loopback (systemd-resolved's stub 127.0.0.53, a local
// dnsmasq) is out of its reach, as is every other host address. The nameservers are, in order:
// the configured ones (network.dns); else the host's, from /etc/resolv.conf; where those are
// loopback, the upstream ones systemd-resolved keeps in /run/systemd/resolve/resolv.conf. The
// host's `search` and `options` lines are kept. On EC2 the upstream is the VPC resolver
// (169.254.169.253 or the VPC base + 2), which dynos may reach.
import { isIP } from 'node:net';

export const HOST_RESOLV_CONF = '/etc/resolv.conf';
export const RESOLVED_UPSTREAM_CONF = '/run/systemd/resolve/resolv.conf';

export interface DynoResolvConf {
  text: string;
  nameservers: string[];
  /** Where the nameservers came from, for the agent's start line. */
  source: 'config' | 'host' | 'systemd-resolved upstream' | 'none';
}

function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1';
}

function parse(text: string): { nameservers: string[]; rest: string[] } {
  const nameservers: string[] = [];
  const rest: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const [word, ...args] = line.split(/\s+/);
    if (word === 'nameserver' && args[0] && isIP(args[0].split('%')[0] ?? '')) nameservers.push(args[0]);
    else if ((word === 'search' || word === 'options') && args.length > 0) rest.push(`${word} ${args.join(' ')}`);
  }
  return { nameservers, rest };
}

export function dynoResolvConf(input: { configured?: readonly string[]; host: string | undefined; upstream: string | undefined }): DynoResolvConf {
  const host = parse(input.host ?? '');
  let nameservers: string[];
  let source: DynoResolvConf['source'];
  if (input.configured && input.configured.length > 0) {
    nameservers = [...input.configured];
    source = 'config';
  } else if (host.nameservers.some((n) => !isLoopback(n))) {
    nameservers = host.nameservers.filter((n) => !isLoopback(n));
    source = 'host';
  } else {
    nameservers = parse(input.upstream ?? '').nameservers.filter((n) => !isLoopback(n));
    source = nameservers.length > 0 ? 'systemd-resolved upstream' : 'none';
  }
  const lines = ['# Written by slipway-agent for every dyno (agent/network/resolv.ts).', ...nameservers.slice(0, 3).map((n) => `nameserver ${n}`), ...host.rest];
  return { text: lines.join('\n') + '\n', nameservers: nameservers.slice(0, 3), source };
}
