// The agent's nftables table as text (ruleset.ts): nft itself accepts it (`nft -c`, which
// checks without applying), and it says what docs/network.md promises, rule by rule.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { buildRuleset } from '../../../../agent/network/ruleset.js';

const settings = { table: 'slipway', bridge: 'slipway0', subnet: '100.72.0.0/16', metadataAddresses: ['169.254.169.254', '169.254.170.2', 'fd00:ec2::254'] };

t.test('nft accepts the table, with and without routes', async (t) => {
  for (const ports of [new Map<number, string>(), new Map([[20001, '100.72.0.7'], [20000, '100.72.0.5']])]) {
    const text = buildRuleset(settings, ports);
    t.doesNotThrow(() => execFileSync('nft', ['-c', '-f', '-'], { input: text, stdio: ['pipe', 'ignore', 'pipe'] }), `nft -c accepts it with ${ports.size} routes`);
  }
});

t.test('the rules', async (t) => {
  const text = buildRuleset(settings, new Map([[20001, '100.72.0.7'], [20000, '100.72.0.5']]));
  t.match(text, /^table inet slipway\ndelete table inet slipway\ntable inet slipway \{/, 'replaced whole in one transaction');
  t.match(text, /elements = \{ 169\.254\.169\.254, 169\.254\.170\.2 \}/, 'IPv4 metadata addresses listed');
  t.match(text, /elements = \{ fd00:ec2::254 \}/, 'IPv6 metadata address listed');
  t.match(text, /iifname "slipway0" ip daddr @metadata4 drop/, 'dynos to metadata: dropped');
  t.notMatch(text, /169\.254\.169\.253|169\.254\.169\.123/, 'Amazon DNS and time sync are not blocked');
  t.match(text, /elements = \{ 20000 : 100\.72\.0\.5, 20001 : 100\.72\.0\.7 \}/, 'the DNAT map, sorted by port');
  t.match(text, /iifname != "slipway0" meta nfproto ipv4 fib daddr type local dnat ip to tcp dport map @web/, 'DNAT from outside, never for traffic from the bridge');
  t.match(text, /ip daddr != 127\.0\.0\.0\/8 fib daddr type local dnat/, 'no DNAT from loopback (it would need route_localnet)');
  t.match(text, /iifname "slipway0" oifname "slipway0" drop/, 'dyno to dyno, routed: dropped');
  t.match(text, /chain input \{[^}]*iifname "slipway0" ct state established,related accept\n\s*iifname "slipway0" drop/, 'dyno to host: only replies');
  t.match(text, /ip saddr 100\.72\.0\.0\/16 oifname != "slipway0" masquerade/, 'egress masqueraded');
  t.notMatch(text, /route_localnet/, 'never route_localnet');
});

t.test('bad settings are refused with CONFIG_INVALID', async (t) => {
  t.throws(() => buildRuleset({ ...settings, metadataAddresses: ['metadata.internal'] }, new Map()), { code: 'CONFIG_INVALID' });
  t.throws(() => buildRuleset({ ...settings, table: 'slip way' }, new Map()), { code: 'CONFIG_INVALID' });
});
