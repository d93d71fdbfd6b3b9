// The host network on its own (host-network.ts), with real namespaces, veths, a real bridge and
// the real nftables table, and listeners in the namespaces (busybox nc from the test stack):
// what the table lets through and what it drops, batching, reconcile after a crash, and that
// nothing is left behind.
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import { bridgeMac, HostNetwork } from '../../../../agent/network/host-network.js';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { busyboxStack, tempDir } from '../../../helpers/host.js';
import { bridgePorts, destroyTestNetwork, netnsOf, networkLeftovers, tableText, testNetworkSettings } from '../../../helpers/network.js';

const busybox = join(busyboxStack(), 'bin/busybox');
const OWNER = { stack: 'busybox', hostname: 'web.1' };

/** A listener on `port` inside `netns` that answers every connection with `reply`. */
function listen(t: { teardown(fn: () => unknown): void }, netns: string, port: number, reply: string): ChildProcess {
  const child = spawn('ip', ['netns', 'exec', netns, busybox, 'nc', '-ll', '-p', String(port), '-e', busybox, 'echo', reply], { stdio: 'ignore' });
  t.teardown(() => { child.kill('SIGKILL'); });
  return child;
}

/** What a TCP connection to host:port reads, or the error code; bounded by 1.5 s. */
function fetchLine(host: string, port: number, fromNetns?: string): Promise<string> {
  if (fromNetns) {
    return new Promise((resolve) => {
      const c = spawn('ip', ['netns', 'exec', fromNetns, busybox, 'nc', '-w', '1', host, String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      c.stdout.on('data', (b: Buffer) => { out += b.toString(); });
      const timer = setTimeout(() => c.kill('SIGKILL'), 1500);
      c.on('close', (code) => { clearTimeout(timer); resolve(out.trim() || `failed(${code})`); });
    });
  }
  return new Promise((resolve) => {
    const s = connect({ host, port });
    let out = '';
    s.setTimeout(1500, () => { s.destroy(); resolve('timeout'); });
    s.on('data', (b: Buffer) => { out += b.toString(); });
    s.on('end', () => resolve(out.trim()));
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
}

async function eventually(check: () => Promise<boolean>, ms = 3000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

t.test('two dyno networks: routed from the host, isolated from each other and from the host', async (t) => {
  const dir = await tempDir(t);
  const s = testNetworkSettings(dir, { poolSize: 2 });
  t.teardown(() => destroyTestNetwork(s));
  const net = new HostNetwork(s);
  await net.init();
  await net.reconcile();
  const a = (await net.acquire(OWNER)).net;
  const b = (await net.acquire(OWNER)).net;
  t.not(a.address, b.address, 'each dyno its own address');
  t.not(a.netns, b.netns, 'and its own namespace');
  t.equal(bridgePorts(s.bridge).length >= 2, true, 'their veths are ports of the bridge');

  listen(t, a.netns, 25000, 'from-a');
  listen(t, b.netns, 25001, 'from-b');
  await net.route(25000, a);
  await net.route(25001, b);
  t.ok(await eventually(async () => (await fetchLine(a.address, 25000)) === 'from-a'), 'the host reaches a dyno at its address (the readiness probe)');
  t.equal(await fetchLine(net.gateway, 25000), 'from-a', 'host port 25000 on a host address is DNATed to dyno a (the router)');
  t.equal(await fetchLine(net.gateway, 25001), 'from-b', 'and 25001 to dyno b');
  t.equal(await fetchLine('127.0.0.1', 25000), 'ECONNREFUSED', 'loopback is never DNATed (no route_localnet)');
  t.match(await fetchLine(a.address, 25000, b.netns), /^failed/, 'dyno b cannot reach dyno a directly');
  t.match(await fetchLine(net.gateway, 25000, b.netns), /^failed/, "nor through a's host port");

  const rules = tableText(s.table);
  t.match(rules, /169\.254\.169\.254/, 'the metadata address is in the table');
  t.match(rules, new RegExp(`25000 : ${a.address.replace(/\./g, '\\.')}`), 'the route is in the DNAT map');

  await net.unroute(25000);
  t.equal(await fetchLine(net.gateway, 25000), 'ECONNREFUSED', 'an unrouted port is closed');
  await Promise.all([net.release(a), net.release(b)]);
  t.same(netnsOf(s.bridge).filter((n) => n === a.netns || n === b.netns), [], 'released namespaces are gone');
  await net.destroy();
  t.same(networkLeftovers(s), [], 'destroy leaves nothing of the bridge');
});

t.test('reconcile after a crash: what nobody claims is removed, a claimed network stays', async (t) => {
  const dir = await tempDir(t);
  const s = testNetworkSettings(dir, { poolSize: 0 });
  t.teardown(() => destroyTestNetwork(s));
  const first = new HostNetwork(s);
  await first.init();
  const kept = (await first.acquire(OWNER)).net;
  const lost = (await first.acquire(OWNER)).net;
  await first.route(25010, kept);
  await first.route(25011, lost);
  // The agent "dies": a new one starts over the same state (its lease files name a live pid,
  // ours, so give the new one a clean slate by claiming only `kept`).
  const second = new HostNetwork(s);
  await second.init();
  t.ok(await second.claim(kept), 'a re-adopted dyno claims its network');
  const { removed } = await second.reconcile();
  t.ok(removed >= 1, 'the unclaimed network was removed');
  t.same(netnsOf(s.bridge), [kept.netns], 'only the claimed namespace is left');
  t.same([...second.table.known.keys()], [25010], 'only the claimed route is left');
  await second.destroy();
  t.same(networkLeftovers(s), [], 'nothing left');
});

t.test('a mass teardown is batched', async (t) => {
  const dir = await tempDir(t);
  const calls: string[] = [];
  const s = testNetworkSettings(dir, { poolSize: 0 });
  t.teardown(() => destroyTestNetwork(s));
  const { hostCommands } = await import('../../../../agent/network/commands.js');
  const real = hostCommands();
  const net = new HostNetwork({ ...s, commands: { ...real, ip: (lines, o) => { calls.push(lines[0] ?? ''); return real.ip(lines, o); } } });
  await net.init();
  const nets = [];
  for (let i = 0; i < 10; i++) nets.push((await net.acquire(OWNER)).net);
  calls.length = 0;
  await Promise.all(nets.map((n) => net.release(n)));
  t.ok(calls.length <= 2, `10 teardowns took ${calls.length} ip processes`);
  t.same(netnsOf(s.bridge), [], 'all gone');
  await net.destroy();
});

t.test('after a reboot (bridge, table and namespaces gone) start applies them again; a flushed table is put back with its routes', async (t) => {
  const dir = await tempDir(t);
  const s = testNetworkSettings(dir, { poolSize: 0 });
  t.teardown(() => destroyTestNetwork(s));
  const first = new HostNetwork(s);
  await first.init();
  const a = (await first.acquire(OWNER)).net;
  await first.route(25020, a);
  // The "reboot": everything in the kernel goes; the state dir (leases) stays.
  const { execFileSync } = await import('node:child_process');
  execFileSync('sh', ['-c', `ip netns del ${a.netns}; ip link del ${s.bridge}; nft delete table inet ${s.table}`]);
  const second = new HostNetwork(s);
  await second.init();
  t.equal(await second.claim(a), false, "the re-adopted dyno's namespace is gone (its container with it)");
  await second.reconcile();
  t.match(tableText(s.table), /chain forward/, 'the table is there again');
  t.ok(bridgePorts(s.bridge).length === 0, 'the bridge is there again, empty');
  const b = (await second.acquire(OWNER)).net;
  await second.route(25021, b);
  listen(t, b.netns, 25021, 'from-b');
  t.ok(await eventually(async () => (await fetchLine(second.gateway, 25021)) === 'from-b'), 'a new dyno is routed');
  // Someone flushes the table (a firewall reload); the periodic check puts it back.
  execFileSync('nft', ['delete', 'table', 'inet', s.table]);
  t.equal(await fetchLine(second.gateway, 25021), 'ECONNREFUSED', 'without the table there is no route');
  t.equal(await second.table.ensure(), true, 'the check saw it gone and applied it');
  t.equal(await fetchLine(second.gateway, 25021), 'from-b', 'with the route it had');
  await second.destroy();
  t.same(networkLeftovers(s), [], 'nothing left');
});

t.test('the bridge keeps its MAC while dynos come and go, so a dyno\'s entry for its gateway stays right', async (t) => {
  const dir = await tempDir(t);
  const s = testNetworkSettings(dir);
  t.teardown(() => destroyTestNetwork(s));
  const net = new HostNetwork(s);
  await net.init();
  const mac = (): string => readFileSync(`/sys/class/net/${s.bridge}/address`, 'utf8').trim();
  t.equal(mac(), bridgeMac(s.bridge), 'the bridge has the MAC derived from its name');
  t.equal(readFileSync(`/sys/class/net/${s.bridge}/addr_assign_type`, 'utf8').trim(), '3', 'set by hand: the kernel no longer takes a port\'s');
  const a = (await net.acquire(OWNER)).net;
  // Dyno a learns its gateway's MAC (the connection itself is dropped by the table's input chain).
  await fetchLine(net.gateway, 1, a.netns);
  const gatewayEntry = (): string => execFileSync('ip', ['-n', a.netns, 'neigh', 'show', net.gateway], { encoding: 'utf8' });
  t.match(gatewayEntry(), mac(), "dyno a's neighbour entry holds the bridge's MAC");
  // Twenty more dynos: veths with random MACs, most likely one lower than a's.
  const others = [];
  for (let i = 0; i < 20; i++) others.push((await net.acquire(OWNER)).net);
  const lowest = others.map((o) => readFileSync(`/sys/class/net/${o.hostVeth}/address`, 'utf8').trim()).sort()[0];
  t.comment(`the lowest port MAC now: ${lowest}`);
  t.equal(mac(), bridgeMac(s.bridge), "the bridge's MAC is its own with 21 ports");
  t.match(gatewayEntry(), mac(), "so dyno a's entry for its gateway still names the bridge");
  await Promise.all(others.map((o) => net.release(o)));
  t.equal(mac(), bridgeMac(s.bridge), 'and after they left');
  await net.init();
  t.equal(mac(), bridgeMac(s.bridge), 'an agent restart (init again) keeps it');
  await net.release(a);
  await net.destroy();
});
