// The owner of the host's dyno network: the bridge, the agent's nftables table (nft-table.ts),
// the address leases (leases.ts), every dyno's network namespace and veth, and the pool of
// namespaces kept ready. docs/network.md says what a dyno can reach and why.
//
// The bridge has a fixed MAC derived from its name (bridgeMac), so that dynos coming and going
// never change the gateway's MAC under the others' neighbour entries.
//
// A dyno's network, made once per container (every start, crash restart and cycle gets a new
// one, with new names: `ip netns del` returns before the veth is gone, so a name is never
// reused):
//   namespace  `<bridge>-<8 hex>`, at /run/netns/<name>, which runc (linux.namespaces path) and
//              LXC (lxc.namespace.share.net) join; Docker's dynos join a pause container that
//              holds it (NetnsFactory, agent/runtime/docker/)
//   veth       host end `sw<10 hex>`, an isolated port of the bridge (no dyno-to-dyno frames even
//              without br_netfilter); the dyno's end is eth0 with the lease's address, lo is up,
//              the default route is the bridge's address
//   route      a web dyno's host port in the table's DNAT map, added while its container starts
//
// The pool (runc and LXC: a namespace nobody holds yet is the same for every dyno) is filled
// in the background, one namespace at a time, so a start takes a ready one and pays no spawn;
// Docker makes each on the start path, from the dyno's stack image. With the port allocator
// given (the agent), each ready namespace also holds a host port already routed to it: a web
// dyno takes both and its start spawns no ip and no nft process; a worker gives the port back
// after its start. The refill runs after the start it follows (refill()), not beside it: on a
// small host the ip processes would take CPU from the runtime (measured: scripts/bench/start.sh).
//
// At start: the bridge and the table are (re)applied with the routes the kernel still has, then
// the manager's re-adoption claims the networks of the dynos it takes over, then reconcile()
// removes every namespace, lease, route and pause container of this bridge that nobody claimed
// (what a crash or a reboot left). Teardowns are queued and batched: one `ip` process and one nft
// transaction for however many arrive together.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SlipwayError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import { hostCommands, type NetCommands } from './commands.js';
import { acceptInDockerUser, removeFromDockerUser } from './docker-forward.js';
import { Leases, type Lease } from './leases.js';
import { NftTable } from './nft-table.js';
import { dynoResolvConf, HOST_RESOLV_CONF, RESOLVED_UPSTREAM_CONF } from './resolv.js';
import { intToIp, ipToInt, parseSubnet, type Subnet } from './subnet.js';

export const NETNS_DIR = '/run/netns';
/** How often the table and Docker's FORWARD accept are checked (a firewall reload flushes them). */
export const NETWORK_CHECK_MS = 30_000;

/** What a dyno's record keeps of its network (agent/dynos/dyno-records.ts). */
export interface DynoNetwork {
  netns: string;
  address: string;
  hostVeth: string;
}

/** Who a network is made for (the pool makes them for nobody in particular). */
export interface NetworkOwner {
  stack: string;
  hostname: string;
}

/** Docker cannot join a namespace by path: its driver makes one held by a pause container. */
export interface NetnsFactory {
  /** Leaves a network namespace named `netns` at /run/netns/<netns>, for a dyno of `owner.stack`
   * whose hostname is `owner.hostname` (Docker takes the hostname from the pause container). */
  create(netns: string, owner: NetworkOwner): Promise<void>;
  /** Removes what holds `netns` (idempotent). */
  destroy(netns: string): Promise<void>;
  /** The namespaces it holds for this bridge, by name. */
  list(prefix: string): Promise<string[]>;
}

/** A network for one container, and a host port already routed to it when the pool had one. */
export interface AcquiredNetwork {
  net: DynoNetwork;
  port?: number;
}

export interface HostNetworkSettings {
  bridge: string;
  subnet: string;
  /** The nftables table (`slipway`; tests use their own). */
  table: string;
  metadataAddresses: readonly string[];
  dns?: readonly string[];
  poolSize: number;
  /** `<stateDir>/network`: leases/ and resolv.conf. */
  dir: string;
  log: Logger;
  commands?: NetCommands;
  netnsFactory?: NetnsFactory;
  /** The dyno port allocator (agent/dynos/ports.ts): ready namespaces come with a routed port. */
  ports?: { reserve(): Promise<number>; release(port: number): void };
}

export class HostNetwork {
  readonly subnet: Subnet;
  readonly table: NftTable;
  readonly resolvConfFile: string;
  private readonly leases: Leases;
  private readonly cmd: NetCommands;
  private readonly log: Logger;
  /** Addresses and namespaces this process holds: in use, in the pool, or being made. */
  private readonly held = new Map<string, DynoNetwork>();
  private readonly pool: AcquiredNetwork[] = [];
  private filling: Promise<void> | undefined;
  private readonly afterStart: (() => Promise<void>)[] = [];
  private next: number;
  private closed = false;
  private teardowns: { net: DynoNetwork; done: () => void }[] = [];
  private tearing: Promise<void> | undefined;
  private checkTimer: NodeJS.Timeout | undefined;

  constructor(private readonly s: HostNetworkSettings) {
    this.subnet = parseSubnet(s.subnet);
    this.cmd = s.commands ?? hostCommands();
    this.log = s.log;
    this.table = new NftTable({ table: s.table, bridge: s.bridge, subnet: s.subnet, metadataAddresses: s.metadataAddresses }, this.cmd, s.log);
    this.leases = new Leases(join(s.dir, 'leases'));
    this.resolvConfFile = join(s.dir, 'resolv.conf');
    this.next = this.subnet.firstDyno;
  }

  get gateway(): string {
    return this.subnet.gateway;
  }

  /** Ready namespaces in the pool now. */
  get readyCount(): number {
    return this.pool.length;
  }

  get bridge(): string {
    return this.s.bridge;
  }

  /** The bridge, forwarding, the table (keeping the routes the kernel has), Docker's FORWARD
   * accept and the dynos' resolv.conf. Idempotent: also what a reboot needs. `shared`: for a
   * process beside the agent (`dyno run`), which leaves the agent's table as it is. */
  async init(options: { shared?: boolean } = {}): Promise<void> {
    await mkdir(this.s.dir, { recursive: true, mode: 0o700 });
    await this.leases.init();
    await this.ensureBridge();
    // Routing between the bridge and the uplink; the host is a router for its dynos (as on any
    // container host). route_localnet is never turned on.
    await writeFile('/proc/sys/net/ipv4/ip_forward', '1\n');
    // The agent replaces the table (its definition may have changed with its version); a
    // one-off `dyno run` beside a running agent (`shared`) only puts it there if it is missing,
    // so that it never races the agent's own route updates.
    if (options.shared) await this.table.ensure();
    else await this.table.apply(await this.table.kernelRoutes());
    await acceptInDockerUser(this.s.bridge);
    const resolv = dynoResolvConf({
      ...(this.s.dns ? { configured: this.s.dns } : {}),
      host: await readFile(HOST_RESOLV_CONF, 'utf8').catch(() => undefined),
      upstream: await readFile(RESOLVED_UPSTREAM_CONF, 'utf8').catch(() => undefined),
    });
    if (resolv.nameservers.length === 0) this.log.warn('no nameserver a dyno can reach (the host has only loopback resolvers): set network.dns');
    await writeFile(this.resolvConfFile, resolv.text, { mode: 0o644 });
    // Past leases tell where the round-robin continues: an address is reused as late as possible
    // (a reused address with a neighbour entry of the old MAC would be unreachable for seconds).
    const taken = (await this.leases.list()).map((l) => ipToInt(l.address) ?? 0);
    if (taken.length > 0) this.next = Math.max(...taken) + 1;
    this.log.info({ bridge: this.s.bridge, subnet: this.s.subnet, gateway: this.gateway, table: this.s.table, nameservers: resolv.nameservers, dnsSource: resolv.source }, 'dyno network ready');
  }

  private async ensureBridge(): Promise<void> {
    const br = this.s.bridge;
    if (!existsSync(`/sys/class/net/${br}`)) {
      await this.cmd.ip([`link add ${br} type bridge`]).catch((err: unknown) => {
        if (!existsSync(`/sys/class/net/${br}`)) throw err;
      });
    }
    // No IPv6 on the bridge: dynos get IPv4 only, and a link-local address would be one more
    // host address to guard.
    await writeFile(`/proc/sys/net/ipv6/conf/${br}/disable_ipv6`, '1\n').catch(() => undefined);
    // A fixed MAC. A bridge given none takes the lowest MAC of its ports, so each dyno veth that
    // comes or goes may change the gateway's MAC under every dyno's neighbour entry: a dyno then
    // sends to a MAC nobody has and cannot reach its gateway (egress, DNS) until the entry
    // expires, tens of seconds (measured: the isolation tests' egress probe failed in one run of
    // three beside other network tests). Derived from the bridge's name, it is the same after an
    // agent restart or a reboot, so the entries of dynos that outlive the agent stay right.
    // Set only when it is not already: setting it flushes the bridge's neighbour entries.
    const mac = bridgeMac(br);
    const assigned = (await readFile(`/sys/class/net/${br}/addr_assign_type`, 'utf8').catch(() => '')).trim();
    const current = (await readFile(`/sys/class/net/${br}/address`, 'utf8').catch(() => '')).trim();
    const lines = [`address replace ${this.gateway}/${this.subnet.prefix} dev ${br}`, `link set ${br} up`];
    if (assigned !== String(NET_ADDR_SET) || current !== mac) lines.unshift(`link set ${br} address ${mac}`);
    await this.cmd.ip(lines);
  }

  /** Starts the periodic check that the table and Docker's accept are still there. */
  watch(): void {
    this.checkTimer = setInterval(() => {
      void this.table.ensure().then(() => acceptInDockerUser(this.s.bridge)).catch((err: unknown) => this.log.error({ err }, 'checking the nftables table failed'));
    }, NETWORK_CHECK_MS);
    this.checkTimer.unref();
  }

  /** A network for one container of a dyno: a ready one from the pool (with its routed port,
   * for a web dyno), or made now. The caller calls refill() once its container started. */
  async acquire(owner: NetworkOwner, web = false): Promise<AcquiredNetwork> {
    if (this.closed) throw new SlipwayError('NETWORK_FAILED', 'the host network is closed');
    const ready = this.s.netnsFactory ? undefined : this.pool.shift();
    if (!ready) return { net: await this.make(owner) };
    if (ready.port !== undefined && !web) {
      // A worker has no port: the route goes after its start (it only costs the refill's time).
      const port = ready.port;
      this.afterStart.push(() => this.unroute(port).finally(() => this.s.ports?.release(port)));
      return { net: ready.net };
    }
    return ready;
  }

  /** Refills the pool (and finishes what acquire() left for after the start); call it once the
   * container that took a network has started, or failed to. */
  refill(): void {
    for (const step of this.afterStart.splice(0)) void step().catch((err: unknown) => this.log.warn({ err }, 'giving back a ready port failed'));
    this.fill();
  }

  /** A re-adopted dyno's network, from its record: held again by this process. false when its
   * namespace is gone (a reboot): the dyno's container is gone with it. */
  async claim(net: DynoNetwork): Promise<boolean> {
    if (!existsSync(join(NETNS_DIR, net.netns))) return false;
    this.held.set(net.address, net);
    await this.leases.hold({ ...net, pid: process.pid });
    return true;
  }

  route(port: number, net: DynoNetwork): Promise<void> {
    return this.table.route(port, net.address);
  }

  unroute(port: number): Promise<void> {
    return this.table.unroute(port);
  }

  /** Tears `net` down (after its container is gone); batched with others asked for meanwhile. */
  release(net: DynoNetwork): Promise<void> {
    return new Promise((resolve) => {
      this.teardowns.push({ net, done: resolve });
      this.tearing ??= Promise.resolve().then(() => this.tearDownQueued());
    });
  }

  /**
   * Removes what this bridge has that no one holds: leases of dead processes that were not
   * claimed, namespaces with the bridge's prefix without a live lease, pause containers, and
   * routes to addresses nobody holds. Then fills the pool.
   */
  async reconcile(): Promise<{ removed: number }> {
    const alive = new Set<string>();
    const orphans: DynoNetwork[] = [];
    for (const l of await this.leases.list()) {
      if (this.held.has(l.address) || (l.pid !== process.pid && l.pid > 0 && pidAlive(l.pid))) alive.add(l.netns);
      else orphans.push(l);
    }
    const prefix = this.netnsPrefix();
    const namespaces = new Set([
      ...(await readdir(NETNS_DIR).catch(() => [] as string[])).filter((n) => n.startsWith(prefix)),
      ...(this.s.netnsFactory ? await this.s.netnsFactory.list(prefix).catch((err: unknown) => { this.log.warn({ err }, 'listing pause containers failed'); return []; }) : []),
    ]);
    for (const n of namespaces) {
      if (!alive.has(n) && !orphans.some((o) => o.netns === n)) orphans.push({ netns: n, address: '', hostVeth: '' });
    }
    await Promise.all(orphans.map((o) => this.release(o)));
    const heldAddresses = new Set([...this.held.values()].map((n) => n.address));
    for (const [port, address] of this.table.known) {
      if (!heldAddresses.has(address)) await this.unroute(port);
    }
    if (orphans.length > 0) this.log.info({ removed: orphans.length }, 'removed dyno networks nobody holds');
    this.fill();
    return { removed: orphans.length };
  }

  /** Tears down the pool and stops filling it; networks in use stay (dynos outlive the agent). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.checkTimer) clearInterval(this.checkTimer);
    await this.filling;
    this.refill();
    await Promise.all(this.pool.splice(0).map(async ({ net, port }) => {
      if (port !== undefined) {
        await this.unroute(port).catch(() => undefined);
        this.s.ports?.release(port);
      }
      await this.release(net);
    }));
  }

  /** Everything of this bridge: namespaces, leases, routes, the table, the bridge (the cleanup
   * command; tests). */
  async destroy(): Promise<void> {
    await this.close();
    for (const n of this.held.values()) await this.release(n);
    await this.reconcile();
    await this.table.remove().catch(() => undefined);
    await removeFromDockerUser(this.s.bridge);
    await this.cmd.ip([`link del ${this.s.bridge}`], { force: true });
  }

  private netnsPrefix(): string {
    return `${this.s.bridge}-`;
  }

  private fill(): void {
    if (this.s.netnsFactory || this.closed || this.filling) return;
    this.filling = (async () => {
      while (!this.closed && this.pool.length < this.s.poolSize) {
        try {
          this.pool.push(await this.ready());
        } catch (err) {
          this.log.error({ err }, 'making a ready network namespace failed');
          break;
        }
      }
    })().finally(() => { this.filling = undefined; });
  }

  /** A pool entry: a namespace, and a host port routed to it when there is an allocator. */
  private async ready(): Promise<AcquiredNetwork> {
    const net = await this.make(undefined);
    if (!this.s.ports) return { net };
    let port: number | undefined;
    try {
      port = await this.s.ports.reserve();
      await this.route(port, net);
      return { net, port };
    } catch (err) {
      if (port !== undefined) this.s.ports.release(port);
      await this.release(net);
      throw err;
    }
  }

  private async make(owner: NetworkOwner | undefined): Promise<DynoNetwork> {
    const lease = await this.lease();
    const net: DynoNetwork = { netns: lease.netns, address: lease.address, hostVeth: lease.hostVeth };
    this.held.set(net.address, net);
    try {
      if (this.s.netnsFactory && owner) await this.s.netnsFactory.create(net.netns, owner);
      else await this.cmd.ip([`netns add ${net.netns}`]);
      await this.cmd.ip([
        `link add ${net.hostVeth} type veth peer name eth0 netns ${net.netns}`,
        // No IPv6 link-local address on the host end: one more host address to guard.
        `link set ${net.hostVeth} addrgenmode none`,
        `link set ${net.hostVeth} master ${this.s.bridge}`,
        `link set dev ${net.hostVeth} type bridge_slave isolated on`,
        `link set ${net.hostVeth} up`,
      ]);
      await this.cmd.ip([
        'link set lo up',
        `address add ${net.address}/${this.subnet.prefix} dev eth0`,
        'link set eth0 up',
        `route add default via ${this.gateway}`,
      ], { netns: net.netns });
    } catch (err) {
      await this.release(net);
      throw new SlipwayError('NETWORK_FAILED', `could not set up the dyno network ${net.netns}: ${(err as Error).message}`, { cause: err });
    }
    return net;
  }

  private async lease(): Promise<Lease> {
    const { firstDyno, lastDyno } = this.subnet;
    const size = lastDyno - firstDyno + 1;
    for (let i = 0; i < size; i++) {
      if (this.next > lastDyno || this.next < firstDyno) this.next = firstDyno;
      const address = intToIp(this.next++);
      if (this.held.has(address)) continue;
      const lease: Lease = { address, netns: `${this.netnsPrefix()}${randomBytes(4).toString('hex')}`, hostVeth: `sw${randomBytes(5).toString('hex')}`, pid: process.pid };
      if (await this.leases.take(lease)) return lease;
    }
    throw new SlipwayError('NO_FREE_ADDRESS', `no free address in ${this.s.subnet}`);
  }

  private async tearDownQueued(): Promise<void> {
    while (this.teardowns.length > 0) {
      const batch = this.teardowns.splice(0);
      const nets = batch.map((b) => b.net);
      const host: string[] = [];
      // Only lines that will succeed: after a failed line, iproute2's batch mode (6.1) silently
      // fails the lines that follow, -force or not. A namespace's deletion takes its veth with
      // it, in the background: an explicit `link del` waits on the kernel 20-30 ms per veth
      // (3 s for 100 in scripts/bench/start.sh), and names are never reused, so it is left to
      // the kernel; only a veth whose namespace is already gone is deleted.
      for (const n of nets) {
        const hasNetns = n.netns !== '' && existsSync(join(NETNS_DIR, n.netns));
        if (hasNetns) host.push(`netns del ${n.netns}`);
        else if (n.hostVeth && existsSync(`/sys/class/net/${n.hostVeth}`)) host.push(`link del ${n.hostVeth}`);
      }
      if (host.length > 0) await this.cmd.ip(host, { force: true }).catch((err: unknown) => this.log.warn({ err }, 'removing dyno networks failed'));
      // The lease (the address) goes only once the veths are gone; a straggler is deleted.
      const left = await vethsGone(nets.map((n) => n.hostVeth).filter((v) => v !== ''), VETH_GONE_MS);
      if (left.length > 0) await this.cmd.ip(left.map((v) => `link del ${v}`), { force: true }).catch((err: unknown) => this.log.warn({ err }, 'removing veths failed'));
      const factory = this.s.netnsFactory;
      if (factory) {
        await Promise.all(nets.map((n) => factory.destroy(n.netns).catch((err: unknown) => this.log.warn({ err, netns: n.netns }, 'removing a pause container failed'))));
      }
      for (const n of nets) {
        if (!n.address) continue;
        if (this.held.get(n.address)?.netns === n.netns) this.held.delete(n.address);
        await this.leases.drop(n.address).catch((err: unknown) => this.log.warn({ err, address: n.address }, 'removing an address lease failed'));
      }
      for (const b of batch) b.done();
    }
    this.tearing = undefined;
  }
}

/** How long a namespace's veth may take to go after the namespace was deleted (~120 ms for
 * 100 here) before it is deleted itself. */
export const VETH_GONE_MS = 3_000;

/** addr_assign_type of an address set by hand (include/uapi/linux/netdevice.h). */
const NET_ADDR_SET = 3;

/** The bridge's fixed MAC: from its name, locally administered and unicast. */
export function bridgeMac(bridge: string): string {
  const b = createHash('sha256').update(`slipway-bridge:${bridge}`).digest().subarray(0, 6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** Waits (bounded) until none of `veths` exists; returns those still there. */
async function vethsGone(veths: string[], ms: number): Promise<string[]> {
  const end = performance.now() + ms; // monotonic: an NTP step moves no deadline (clock.ts)
  let left = veths.filter((v) => existsSync(`/sys/class/net/${v}`));
  while (left.length > 0 && performance.now() < end) {
    await new Promise((r) => setTimeout(r, 10));
    left = left.filter((v) => existsSync(`/sys/class/net/${v}`));
  }
  return left;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
