// The dyno networks of the start benchmark (scripts/bench/start.sh, start-bench.mjs): a
// HostNetwork of the bench's own (bridge, subnet, nftables table and leases dir, never the
// agent's `slipway0`/`slipway`, so that it runs beside an agent and beside the network tests),
// the namespace a shell script makes for the bare runtimes' baseline, and the scale loop.
//
// Ownership: everything named with the bench's bridges (`swbench0-*`, `swbench1-*`,
// `swbench2-*` namespaces and Docker pause containers, their veths, the bridges, the tables,
// the leases under the bench's work dir) is the bench's. benchNetworks() removes what an
// interrupted run left, destroyAll() all of it at the end, both through HostNetwork.destroy().
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { HostNetwork, NETNS_DIR } from '../../dist/agent/network/host-network.js';
import { hostCommands } from '../../dist/agent/network/commands.js';
import { Leases } from '../../dist/agent/network/leases.js';
import { MAP_NAME } from '../../dist/agent/network/ruleset.js';
import { intToIp, parseSubnet } from '../../dist/agent/network/subnet.js';
import { PortAllocator } from '../../dist/agent/dynos/ports.js';
import { median, now } from './lib.mjs';

// The agent's default (agent/config/schema.ts, network.metadataAddresses): the same table.
const METADATA = ['169.254.169.254', '169.254.170.2', 'fd00:ec2::254'];
// /24s in 100.64.0.0/10 away from the agent's 100.72.0.0/16; the network tests pick theirs at
// random in 100.64-127 (test/helpers/network.ts), so a clash is checked, not assumed away.
const SUBNETS = ['100.66.250.0/24', '100.66.251.0/24', '100.66.252.0/24', '100.66.253.0/24'];
/** A failed pool fill or teardown shows as this, not as a hung benchmark. */
const WAIT_MS = 10_000;

function routedElsewhere(subnet, bridge) {
  const routes = JSON.parse(execFileSync('ip', ['-4', '-j', 'route', 'show', 'table', 'all'], { encoding: 'utf8' }) || '[]');
  return routes.some((r) => r.dst === subnet && r.dev !== bridge);
}

function settingsFor(work, name, table, poolSize, log, taken) {
  const subnet = SUBNETS.find((s) => !taken.includes(s) && !routedElsewhere(s, name));
  if (!subnet) throw new Error(`no free subnet for ${name} among ${SUBNETS.join(', ')}`);
  taken.push(subnet);
  return { bridge: name, subnet, table, metadataAddresses: METADATA, poolSize, dir: join(work, `network-${name}`), log };
}

/** The bench's HostNetwork, with its host commands behind gates that hold() can close (to
 * show where a networked start's time goes). */
export class BenchNetwork {
  constructor(settings) {
    this.settings = settings;
    this.gates = {};
    const real = hostCommands();
    const commands = {
      ...real,
      ip: async (lines, o = {}) => {
        await this.gates.ip;
        return real.ip(lines, o);
      },
      nft: async (script) => {
        await this.gates.nft;
        return real.nft(script);
      },
    };
    // As the agent: ready namespaces come with a host port routed to them (host-network.ts).
    this.ports = new PortAllocator(15000, 15999);
    this.host = new HostNetwork({ ...settings, commands, ports: this.ports });
    this.leases = new Leases(join(settings.dir, 'leases'));
    this.subnet = parseSubnet(settings.subnet);
    this.nextScript = this.subnet.lastDyno;
  }

  get resolvConfFile() { return this.host.resolvConfFile; }

  async init() {
    await this.host.init();
    await this.host.reconcile();
    await this.waitPoolFull();
  }

  /** As launch.ts: a web dyno's network, with its routed port when the pool had one. */
  async acquire(owner, web = false) {
    return this.host.acquire(owner, web);
  }

  /**
   * A diagnostic of where a networked start's time goes: holds the HostNetwork's host commands
   * of `kinds` ('ip', 'nft') until the returned function is called. With a network taken from
   * the pool, its iproute2 and nft calls are the pool's refill, which the agent runs once the
   * start has settled (host-network.ts refill()); a pooled namespace's route is made ahead.
   */
  hold(kinds) {
    // An empty pool would make the acquire itself wait on the gate.
    if (this.host.readyCount <= 0) throw new Error('hold() with an empty pool');
    let open;
    const gate = new Promise((r) => { open = r; });
    for (const k of kinds) this.gates[k] = gate;
    return () => { for (const k of kinds) delete this.gates[k]; open(); };
  }

  /** Resolves once the pool holds poolSize ready namespaces again (HostNetwork.readyCount,
   * polled every 5 ms, bounded by WAIT_MS): a ready namespace is pushed after its route too. */
  async waitPoolFull() {
    const end = now() + WAIT_MS;
    while (this.host.readyCount < this.settings.poolSize) {
      if (now() > end) throw new Error(`the pool of ${this.settings.bridge} did not refill within ${WAIT_MS} ms`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /**
   * A network for the bare runtimes' baseline, made by a shell script rather than by the agent:
   * its address is leased like a `dyno run`'s (leases.ts), so the HostNetwork never hands it
   * out too; names in the HostNetwork's shapes, so its reconcile removes a leftover. `script`
   * runs the same commands the agent runs (three iproute2 batches, one nft element), one after
   * another, and then prints `up`: the probe starts on that line, as the agent's starts once
   * the network is ready (a connect to an address nobody answers ARP for yet waits ~1 s for
   * the next ARP retry).
   */
  async scriptNetwork(port) {
    const { bridge, table } = this.settings;
    for (let i = 0; i <= this.subnet.lastDyno - this.subnet.firstDyno; i++) {
      if (this.nextScript < this.subnet.firstDyno) this.nextScript = this.subnet.lastDyno;
      const address = intToIp(this.nextScript--);
      const net = { address, netns: `${bridge}-${randomBytes(4).toString('hex')}`, hostVeth: `sw${randomBytes(5).toString('hex')}`, port };
      if (!await this.leases.take({ ...net, pid: process.pid })) continue;
      const script = [
        'set -e',
        `ip netns add ${net.netns}`,
        "ip -batch - <<'EOF'",
        `link add ${net.hostVeth} type veth peer name eth0 netns ${net.netns}`,
        `link set ${net.hostVeth} addrgenmode none`,
        `link set ${net.hostVeth} master ${bridge}`,
        `link set dev ${net.hostVeth} type bridge_slave isolated on`,
        `link set ${net.hostVeth} up`,
        'EOF',
        `ip -n ${net.netns} -batch - <<'EOF'`,
        'link set lo up',
        `address add ${address}/${this.subnet.prefix} dev eth0`,
        'link set eth0 up',
        `route add default via ${this.subnet.gateway}`,
        'EOF',
        `nft add element inet ${table} ${MAP_NAME} '{ ${port} : ${address} }'`,
        'echo up',
      ].join('\n');
      return { ...net, script, container: { netns: net.netns, path: join(NETNS_DIR, net.netns), resolvConf: this.resolvConfFile } };
    }
    throw new Error(`no free address in ${this.settings.subnet} for the script's network`);
  }

  /** Removes a script network (after its container is gone): element, namespace, veth, lease. */
  async dropScriptNetwork(net) {
    try { execFileSync('nft', ['delete', 'element', 'inet', this.settings.table, MAP_NAME, `{ ${net.port} }`], { stdio: 'ignore' }); } catch { /* not added */ }
    await this.host.release(net);
    this.forgetNeighbours();
  }

  /** Forgets the host's neighbour entries on the bridge (between rounds, untimed): an address
   * handed out again with an entry of the old MAC would be unreachable for seconds
   * (host-network.ts lease()), and every probe then resolves its dyno's address, as a first
   * probe of a new one does. */
  forgetNeighbours() {
    try { execFileSync('ip', ['neigh', 'flush', 'dev', this.settings.bridge], { stdio: 'ignore' }); } catch { /* no entries */ }
  }

  async destroy() {
    await this.host.destroy();
  }
}

/**
 * The bench's networks: `swbench0` (pool 4, the runc and LXC start rounds), `swbench1` (pool
 * 0, the scale loop) and, with `docker` (the cgroup parent) set, `swbench2` for Docker's
 * dynos, whose namespaces a pause container of the Docker driver holds (its `driver`). Each is
 * first removed with whatever an interrupted run left of it.
 */
export async function benchNetworks(work, log, { docker, stackDir } = {}) {
  const taken = [];
  const all = { start: settingsFor(work, 'swbench0', 'swbench', 4, log, taken), scale: settingsFor(work, 'swbench1', 'swbench_scale', 0, log, taken) };
  let dockerDriver;
  if (docker) {
    const { DockerDriver } = await import('../../dist/agent/runtime/docker/driver.js');
    dockerDriver = new DockerDriver({ cgroupParent: docker, log, stackDir: () => stackDir });
    if (typeof dockerDriver.netnsFactory === 'function') all.docker = { ...settingsFor(work, 'swbench2', 'swbench_docker', 0, log, taken), netnsFactory: dockerDriver.netnsFactory() };
  }
  const out = {};
  for (const [k, s] of Object.entries(all)) {
    // A HostNetwork is closed once destroyed: a leftover is removed by one of its own.
    await new HostNetwork(s).destroy().catch(() => undefined);
    out[k] = new BenchNetwork(s);
  }
  if (out.docker) out.docker.driver = dockerDriver;
  return out;
}

export async function destroyAll(nets) {
  for (const n of nets) await n.destroy().catch((err) => process.stderr.write(`start-bench: removing ${n.settings.bridge}: ${err.message}\n`));
}

/** What is left of the bench's networks (empty after destroyAll). */
export function networkLeftovers(nets) {
  const out = [];
  const names = existsSync(NETNS_DIR) ? readdirSync(NETNS_DIR) : [];
  for (const { settings: s } of nets) {
    out.push(...names.filter((n) => n.startsWith(`${s.bridge}-`)).map((n) => `netns ${n}`));
    if (existsSync(`/sys/class/net/${s.bridge}`)) out.push(`bridge ${s.bridge}`);
    try { execFileSync('nft', ['list', 'table', 'inet', s.table], { stdio: 'ignore' }); out.push(`table ${s.table}`); } catch { /* gone */ }
  }
  return out;
}

/**
 * Scale (issue 12): COUNT networks with a route each, made one after another through the
 * HostNetwork with no pool (each is made, not taken), the setup of each timed; then the
 * teardown of all of them at once, as a drain does it: every route removed, then every
 * network released, each group asked for together (batched: host-network.ts, nft-table.ts).
 */
export async function scaleLoop(net, { count = 100, port = 17000, budgetMs = 120_000 } = {}) {
  const end = now() + budgetMs;
  await net.init();
  const setups = [];
  const made = [];
  for (let i = 0; i < count; i++) {
    if (now() > end) throw new Error(`scale loop: ${i} networks in ${budgetMs} ms, stopped`);
    const t0 = now();
    const { net: n } = await net.acquire({ stack: 'busybox', hostname: `bench-scale-${i}` });
    made.push(n);
    await net.host.route(port + i, n);
    setups.push(now() - t0);
  }
  const t1 = now();
  await Promise.all(made.map((_, i) => net.host.unroute(port + i)));
  const t2 = now();
  await Promise.all(made.map((n) => net.host.release(n)));
  const t3 = now();
  const first = median(setups.slice(0, 10));
  const last = median(setups.slice(-10));
  return { count, first, last, ratio: last / first, all: median(setups), slope: slope(setups), unrouteMs: t2 - t1, releaseMs: t3 - t2, setups };
}

/** Least-squares growth of the samples, per sample (ms per network made): less moved by a
 * few slow samples than the two medians. */
function slope(ys) {
  const n = ys.length;
  const mx = (n - 1) / 2;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0, sxx = 0;
  ys.forEach((y, x) => { sxy += (x - mx) * (y - my); sxx += (x - mx) ** 2; });
  return sxy / sxx;
}
