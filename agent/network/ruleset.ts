// The agent's one nftables table (`inet slipway`), as text for `nft -f`. Pure: the same
// settings and ports give the same text (test/unit/agent/network/ruleset.test.ts checks it, and
// that `nft -c` accepts it). What it enforces, per hook (docs/network.md says why):
//
//   prerouting (nat)   traffic from outside the bridge to a host address and a dyno's host
//                      port: DNAT to that dyno's address, same port (map `web`: port -> address)
//   output (nat)       the same for connections made on the host itself (a router on this
//                      host), except to loopback: DNAT from 127/8 would need route_localnet,
//                      which is never turned on
//   prerouting (raw)   from the bridge, a source address outside the subnet: dropped (spoofing)
//   forward            from the bridge: the metadata addresses, anything back onto the bridge
//                      (dyno to dyno, also through another dyno's host port) and all IPv6 are
//                      dropped; the rest is egress. Into the bridge: only DNATed connections
//                      and replies
//   input              from the bridge, new connections to any local address (gateway, the
//                      host's other addresses, loopback) are dropped; replies to the host's own
//                      connections (the readiness probe, the router) pass
//   postrouting (nat)  egress from the subnet is masqueraded
//
// The table is replaced whole and atomically (one nft transaction: create, delete, define), so
// applying it again after a host reboot or a flush by someone else is the same operation as
// the first time; the `web` map's elements are given, so a reapply loses no route.
import { isIPv4, isIPv6 } from 'node:net';
import { SlipwayError } from '../../shared/errors.js';

export interface RulesetSettings {
  table: string;
  bridge: string;
  subnet: string;
  /** Addresses no dyno may reach (config network.metadataAddresses). */
  metadataAddresses: readonly string[];
}

/** port -> dyno address, the DNAT map's elements. */
export type PortMap = ReadonlyMap<number, string>;

export const MAP_NAME = 'web';

const NAME = /^[A-Za-z][A-Za-z0-9_]{0,31}$/;

export function splitMetadata(list: readonly string[]): { v4: string[]; v6: string[] } {
  const v4: string[] = [];
  const v6: string[] = [];
  for (const a of list) {
    if (isIPv4(a)) v4.push(a);
    else if (isIPv6(a)) v6.push(a);
    else throw new SlipwayError('CONFIG_INVALID', `network.metadataAddresses: ${JSON.stringify(a)} is not an IP address`);
  }
  return { v4, v6 };
}

export function portElements(ports: PortMap): string {
  return [...ports].sort((a, b) => a[0] - b[0]).map(([p, a]) => `${p} : ${a}`).join(', ');
}

export function buildRuleset(s: RulesetSettings, ports: PortMap): string {
  if (!NAME.test(s.table)) throw new SlipwayError('CONFIG_INVALID', `bad nftables table name ${JSON.stringify(s.table)}`);
  const { v4, v6 } = splitMetadata(s.metadataAddresses);
  const br = JSON.stringify(s.bridge);
  const set = (name: string, type: string, elements: string[]) =>
    `  set ${name} {\n    type ${type}\n    flags interval\n${elements.length ? `    elements = { ${elements.join(', ')} }\n` : ''}  }`;
  const chain = (name: string, hook: string, rules: string[]) => `  chain ${name} {\n    ${hook}\n${rules.map((r) => `    ${r}\n`).join('')}  }`;
  const elements = portElements(ports);
  return [
    `table inet ${s.table}`,
    `delete table inet ${s.table}`,
    `table inet ${s.table} {`,
    set('metadata4', 'ipv4_addr', v4),
    set('metadata6', 'ipv6_addr', v6),
    `  map ${MAP_NAME} {\n    type inet_service : ipv4_addr\n${elements ? `    elements = { ${elements} }\n` : ''}  }`,
    chain('guard', 'type filter hook prerouting priority raw; policy accept;', [
      `iifname ${br} ip saddr != ${s.subnet} drop`,
    ]),
    chain('prerouting', 'type nat hook prerouting priority dstnat; policy accept;', [
      `iifname != ${br} meta nfproto ipv4 fib daddr type local dnat ip to tcp dport map @${MAP_NAME}`,
    ]),
    chain('output', 'type nat hook output priority -100; policy accept;', [
      `meta nfproto ipv4 ip daddr != 127.0.0.0/8 fib daddr type local dnat ip to tcp dport map @${MAP_NAME}`,
    ]),
    chain('forward', 'type filter hook forward priority filter; policy accept;', [
      `iifname ${br} ip daddr @metadata4 drop`,
      `iifname ${br} ip6 daddr @metadata6 drop`,
      `iifname ${br} oifname ${br} drop`,
      `iifname ${br} meta nfproto ipv6 drop`,
      `oifname ${br} ct state established,related accept`,
      `oifname ${br} ct status dnat accept`,
      `oifname ${br} drop`,
    ]),
    chain('input', 'type filter hook input priority filter; policy accept;', [
      `iifname ${br} ct state established,related accept`,
      `iifname ${br} drop`,
    ]),
    chain('postrouting', 'type nat hook postrouting priority srcnat; policy accept;', [
      `ip saddr ${s.subnet} oifname != ${br} masquerade`,
    ]),
    '}',
    '',
  ].join('\n');
}
