// Docker dynos in their own network namespace (pause.ts), against the real engine, a real host
// network of the test's own (bridge, subnet, nftables table: test/helpers/network.ts) and the
// busybox stack: what a dyno sees of its network, that the host reaches it at its address,
// that nothing is left once it is gone, reconcile of forgotten pause containers, failures that
// leave nothing, and what a pause container costs (reported as test comments).
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { chownSync, cpSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostNetwork, NETNS_DIR, type DynoNetwork, type HostNetworkSettings } from '../../../../../agent/network/host-network.js';
import { hostCommands } from '../../../../../agent/network/commands.js';
import { DockerDriver } from '../../../../../agent/runtime/docker/driver.js';
import { createEngineClient } from '../../../../../agent/runtime/docker/engine.js';
import { PauseContainers } from '../../../../../agent/runtime/docker/pause.js';
import { StackImages, stackFingerprint, stackImageRef } from '../../../../../agent/runtime/docker/stack-image.js';
import type { ContainerSpec, DynoHandle } from '../../../../../agent/runtime/driver.js';
import { dynoArgs, dynoEnv } from '../../../../../agent/dynos/entrypoint.js';
import { busyboxStack, cgroupChildren, eventually, mountsUnder, quietLogger, removeCgroupParent, uniqueName } from '../../../../helpers/host.js';
import { dockerContainersOf, removeDockerContainersNamed, removeDockerImage } from '../../../../helpers/docker.js';
import { bridgePorts, destroyTestNetwork, netnsOf, networkLeftovers, testNetworkSettings } from '../../../../helpers/network.js';

const DYNO_UID = 64000;
const PORT = 5000;
const cgroupParent = `/${uniqueName('slipway-ptest-')}`;
const prefix = uniqueName('dp');
// A stack name of this test's own, so its image tag is the test's to delete.
const stackName = uniqueName('ptest-');
// The busybox stack with an /etc/hosts of its own (made in before()), which the dyno must see.
let stack: string;
const STACK_HOSTS = '127.0.0.1 localhost # the stack\'s own\n';
const driver = new DockerDriver({ cgroupParent, log: quietLogger(), stackDir: () => stack });
const handles: DynoHandle[] = [];
let root: string;
let slug: string;
let s: HostNetworkSettings;
let net: HostNetwork;

function docker(args: string[]): string {
  return execFileSync('docker', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/** The namespaces of the pause containers (any state) of this test's bridge. */
function pauseContainers(): string[] {
  return docker(['ps', '-a', '--filter', 'label=slipway.pause', '--format', '{{.Label "slipway.pause"}}'])
    .split('\n').filter((n) => n.startsWith(`${s.bridge}-`)).sort();
}

function pausePid(netns: string): number {
  return Number(docker(['inspect', '--format', '{{.State.Pid}}', `slipway-pause.${netns}`]));
}

const nsInode = (path: string) => statSync(path).ino;
const leases = () => readdirSync(join(s.dir, 'leases'));

t.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'slipway-pause-'));
  stack = join(root, 'stack');
  cpSync(busyboxStack(), stack, { recursive: true, verbatimSymlinks: true });
  writeFileSync(join(stack, 'etc', 'hosts'), STACK_HOSTS);
  slug = join(root, 'slug');
  mkdirSync(join(slug, 'app'), { recursive: true });
  writeFileSync(join(slug, 'app', 'hello.txt'), 'from the slug\n');
  for (const p of ['app', 'app/hello.txt']) chownSync(join(slug, p), DYNO_UID, DYNO_UID);
  s = testNetworkSettings(root, { netnsFactory: driver.netnsFactory() });
  net = new HostNetwork(s);
  await net.init();
  await net.reconcile();
});
// In order, each step on its own: dynos (which hold the /app binds and join the pause
// containers), the network (its reconcile removes the pause containers through the factory),
// anything of the bridge still left, mounts, the image tag, the cgroup parent, the temp dir.
t.teardown(async () => {
  const steps: Array<[string, () => unknown]> = [
    ['destroy dynos', async () => { for (const h of handles) await driver.destroy(h).catch(() => undefined); }],
    ['remove containers', () => removeDockerContainersNamed(`slipway-${prefix}`)],
    ['destroy the network', () => (s ? destroyTestNetwork(s) : undefined)],
    ['remove pause containers', () => { const left = s ? pauseContainers() : []; if (left.length) docker(['rm', '-f', ...left.map((n) => `slipway-pause.${n}`)]); }],
    ['unmount', () => { for (const m of root ? mountsUnder(root) : []) execFileSync('umount', ['-l', m]); }],
    ['remove image tag', async () => (stack ? removeDockerImage(stackImageRef(stackName, await stackFingerprint(stack))) : undefined)],
    ['remove cgroup parent', () => removeCgroupParent(cgroupParent)],
    ['remove temp dir', () => (root ? rm(root, { recursive: true, force: true }) : undefined)],
  ];
  for (const [what, step] of steps) {
    try { await step(); } catch (err) { console.error(`teardown: ${what}: ${String(err)}`); }
  }
});

function spec(name: string, command: string, network: DynoNetwork): ContainerSpec {
  const id = `${prefix}-${name}`;
  return {
    dynoId: id, dir: join(root, 'dynos', id), stackName, stackDir: stack, slugDir: slug,
    args: dynoArgs(command, '/bin/sh'), env: dynoEnv({ name: 'web.1', env: {} }, PORT), cwd: '/app',
    user: { uid: DYNO_UID, gid: DYNO_UID }, hostname: id,
    limits: { memoryBytes: 64 * 1024 * 1024, cpuShares: 512, pidsLimit: 64, nofile: 1024 },
    network: { netns: network.netns, path: join(NETNS_DIR, network.netns), resolvConf: net.resolvConfFile },
  };
}

/** The dyno's output from the engine's json-file log. */
function output(h: DynoHandle): string {
  return readFileSync(driver.log(h).path, 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { log: string }).log).join('');
}

async function eventuallyLine(host: string, port: number, want: string): Promise<string> {
  let got = '';
  for (let i = 0; i < 50 && got !== want; i++) {
    got = await fetchLine(host, port);
    if (got !== want) await new Promise((r) => setTimeout(r, 100));
  }
  return got;
}

/** What a TCP connection to host:port reads, or the error code; bounded by 1.5 s. */
function fetchLine(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const c = connect({ host, port });
    let out = '';
    c.setTimeout(1500, () => { c.destroy(); resolve('timeout'); });
    c.on('data', (b: Buffer) => { out += b.toString(); });
    c.on('end', () => resolve(out.trim()));
    c.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
}

t.test("a Docker dyno runs in its network's namespace, held by a pause container", async (t) => {
  const id = `${prefix}-web`;
  const { net: network } = await net.acquire({ stack: stackName, hostname: id });
  t.same(pauseContainers(), [network.netns], 'one pause container, for the namespace');
  const pid = pausePid(network.netns);
  t.equal(nsInode(join(NETNS_DIR, network.netns)), nsInode(`/proc/${pid}/ns/net`), "/run/netns/<netns> is the pause container's namespace");
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  t.match(status, /^Uid:\s+65534\s/m, 'the pause process runs as nobody');
  t.match(status, /^CapEff:\s+0+$/m, 'with no capability');
  t.match(status, /^NoNewPrivs:\s+1$/m);
  t.match(status, /^Seccomp:\s+2$/m, 'under the seccomp filter');
  t.match(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), /^\/bin\/sh\0-c\0read x\0$/, 'the stack shell, blocked on stdin');
  const cgroup = /^\d+:[^:]*\bmemory\b[^:]*:(.*)$/m.exec(readFileSync(`/proc/${pid}/cgroup`, 'utf8'))?.[1] ?? '';
  t.ok(cgroup.startsWith(`${cgroupParent}/`), "in the drivers' cgroup parent");
  t.equal(readFileSync(`/sys/fs/cgroup/memory${cgroup}/memory.limit_in_bytes`, 'utf8').trim(), String(16 * 1024 * 1024), 'with a tiny memory limit');

  const script = 'ip -4 addr show eth0; ip route; echo "links=$(ls /sys/class/net | tr "\\n" " ")"; echo "hostname=$(hostname)"; echo "low-ports=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start) ping=$(cat /proc/sys/net/ipv4/ping_group_range)"; cat /etc/resolv.conf; cat /etc/hosts; echo ready; exec nc -ll -p "$PORT" -e /bin/echo from-dyno';
  const h = await driver.start(spec('web', script, network));
  handles.push(h);
  await eventually('the dyno to reach its listener', () => /ready/.test(output(h)) || undefined, 10_000);
  const out = output(h);
  t.match(out, new RegExp(`inet ${network.address.replace(/\./g, '\\.')}/\\d+ .*eth0`), "the lease's address is on eth0");
  t.match(out, new RegExp(`default via ${net.gateway.replace(/\./g, '\\.')}`), 'the default route is the bridge');
  t.match(out, /^links=eth0 lo $/m, 'no interface of the host');
  t.match(out, new RegExp(`^hostname=${id}$`, 'm'), "the spec's hostname, through the pause container");
  t.match(out, /^low-ports=1024 ping=1\s+0$/m, "the namespace's sysctls are the kernel's defaults, as for runc: no low ports, no ICMP sockets for the dyno user");
  t.ok(out.includes(readFileSync(net.resolvConfFile, 'utf8')), "/etc/resolv.conf is the agent's file");
  t.ok(out.includes(STACK_HOSTS), "/etc/hosts is the stack's, as under runc (not the empty file of the engine's init layer)");
  t.equal(nsInode(`/proc/${h.pid}/ns/net`), nsInode(join(NETNS_DIR, network.netns)), 'the dyno is in that namespace');
  t.equal(await eventuallyLine(network.address, PORT, 'from-dyno'), 'from-dyno', "the host reaches the dyno's listener at its address");

  await driver.stop(h, 2_000);
  await driver.destroy(h);
  t.same(dockerContainersOf(h.dynoId), [], "the dyno's container is gone");
  t.same(pauseContainers(), [network.netns], "the pause container is not the driver's to remove: it outlives the dyno's container");
  await net.release(network);
  t.same(pauseContainers(), [], 'released: no pause container');
  t.same(netnsOf(s.bridge), [], 'no namespace');
  t.same(bridgePorts(s.bridge), [], 'no veth');
  t.same(leases(), [], 'no lease');
  t.same(cgroupChildren(cgroupParent), [], 'no cgroup');
});

t.test('reconcile removes pause containers nobody holds', async (t) => {
  // Forgotten by a crash: made by `net`, never claimed by the agent that comes next.
  const { net: lost } = await net.acquire({ stack: stackName, hostname: 'lost' });
  // Made and then forgotten before any lease: one still named at /run/netns, one not.
  const factory = driver.netnsFactory();
  const named = `${s.bridge}-0000000a`;
  const bare = `${s.bridge}-0000000b`;
  await factory.create(named, { stack: stackName, hostname: 'named' });
  await factory.create(bare, { stack: stackName, hostname: 'bare' });
  execFileSync('ip', ['netns', 'del', bare]);
  t.same(pauseContainers(), [lost.netns, named, bare].sort(), 'three pause containers');
  t.same(await factory.list(`${s.bridge}-`), [lost.netns, named, bare].sort(), 'list() finds them by label');
  const next = new HostNetwork(s);
  await next.init();
  const { removed } = await next.reconcile();
  t.equal(removed, 3, 'all three are orphans');
  t.same(pauseContainers(), [], 'no pause container left');
  t.same(netnsOf(s.bridge), [], 'no namespace');
  t.same(bridgePorts(s.bridge), [], 'no veth');
  t.same(leases(), [], 'no lease');
  await factory.destroy(named);
  t.pass('destroy of what is gone already is fine');
});

t.test('a pause container that cannot be made leaves nothing', async (t) => {
  const real = hostCommands();
  const failing = new PauseContainers({
    docker: createEngineClient(), images: new StackImages(createEngineClient(), quietLogger()), cgroupParent,
    seccompProfile: () => '', stackDir: () => stack, log: quietLogger(),
    commands: { ...real, ip: (lines, o) => (lines.some((l) => l.startsWith('netns attach')) ? real.ip(['netns attach no/such/name 1'], o) : real.ip(lines, o)) },
  });
  const netns = `${s.bridge}-0000000c`;
  await t.rejects(failing.create(netns, { stack: stackName, hostname: 'h' }), { code: 'RUNTIME_FAILED' }, 'the attach fails');
  t.same(pauseContainers(), [], 'its container is removed');
  t.same(netnsOf(s.bridge), []);
  const noStack = new HostNetwork({ ...s, netnsFactory: new DockerDriver({ cgroupParent, log: quietLogger(), stackDir: () => { throw new Error('stack gone is not installed'); } }).netnsFactory() });
  await noStack.init();
  await t.rejects(noStack.acquire({ stack: 'gone', hostname: 'h' }), { code: 'NETWORK_FAILED', message: /stack gone is not installed/ });
  t.same(pauseContainers(), [], 'no pause container');
  t.same(leases(), [], 'the lease is given back');
  t.same(netnsOf(s.bridge), []);
});

t.test('what a pause container costs on the start path', async (t) => {
  const factory = driver.netnsFactory();
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const made: number[] = [];
  const plain: number[] = [];
  let rss = '';
  for (let i = 0; i < 10; i++) {
    const netns = `${s.bridge}-1000000${i}`;
    const began = performance.now();
    await factory.create(netns, { stack: stackName, hostname: `cost-${i}` });
    made.push(performance.now() - began);
    if (i === 0) {
      const pid = pausePid(netns);
      // RSS counts the pages shared with every other shim and sh; Private_Dirty is what this
      // one pause container adds.
      const mem = (p: number) => {
        const rollup = readFileSync(`/proc/${p}/smaps_rollup`, 'utf8');
        const kb = (field: string) => new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1];
        return `RSS ${kb('Rss')} kB, PSS ${kb('Pss')} kB, private dirty ${kb('Private_Dirty')} kB`;
      };
      const shim = Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
      rss = `pause process: ${mem(pid)}; its shim (${readFileSync(`/proc/${shim}/comm`, 'utf8').trim()}): ${mem(shim)}`;
    }
    await factory.destroy(netns);
    const p0 = performance.now();
    await hostCommands().ip([`netns add ${netns}`]);
    plain.push(performance.now() - p0);
    await hostCommands().ip([`netns del ${netns}`]);
  }
  // The dyno's own start, joining a pause container's network or the host's (the baseline).
  const starts = { joined: [] as number[], host: [] as number[] };
  for (let i = 0; i < 5; i++) {
    const { net: network } = await net.acquire({ stack: stackName, hostname: `cost-${i}` });
    for (const mode of ['joined', 'host'] as const) {
      const sp = spec(`cost-${mode}-${i}`, 'true', network);
      if (mode === 'host') delete sp.network;
      const began = performance.now();
      const h = await driver.start(sp);
      starts[mode].push(performance.now() - began);
      handles.push(h);
      await driver.wait(h);
      await driver.destroy(h);
    }
    await net.release(network);
  }
  t.comment(`pause container create+start+attach: median ${median(made).toFixed(0)} ms (min ${Math.min(...made).toFixed(0)}, max ${Math.max(...made).toFixed(0)}) of 10; ip netns add: median ${median(plain).toFixed(1)} ms; ${rss}`);
  t.comment(`dyno start(): median ${median(starts.joined).toFixed(0)} ms joining its pause container, ${median(starts.host).toFixed(0)} ms in the host network (5 each)`);
  t.same(pauseContainers(), [], 'none left');
});

t.test('nothing of the test is left', async (t) => {
  t.same(pauseContainers(), [], 'no pause containers');
  t.equal(docker(['ps', '-aq', '--filter', `name=^/slipway-${prefix}`]), '', 'no dyno containers');
  t.same(cgroupChildren(cgroupParent), [], 'no cgroups');
  t.same(mountsUnder(root), [], 'no mounts');
  await net.destroy();
  t.same(networkLeftovers(s), [], 'nothing of the bridge');
});
