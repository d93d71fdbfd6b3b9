// The dyno runs of the start benchmark (start-bench.mjs): a dyno started through the built
// agent's runtime driver, as the agent starts one, timed until it runs or its port accepts.
//
// "Running" is observed the same way for a dyno and for the bare runtime (start-bare.mjs): the
// container's command first connects to a TCP listener of this process (dynos and bare
// containers share the host's network), and the time from the start request to that
// connection is the sample. "Accepting" is the time until a busybox httpd on the dyno's port
// takes a TCP connection, polled every millisecond.
//
// With its own network (issue 12) a dyno cannot connect back to the host, so those runs are
// "accepting" only, probed at the dyno's own address (start-network.mjs owns the networks).
import { execFileSync } from 'node:child_process';
import { createServer, connect } from 'node:net';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { dynoArgs, dynoEnv } from '../../dist/agent/dynos/entrypoint.js';
import { createSlugStore } from '../../dist/agent/slugs/factory.js';
import { NETNS_DIR } from '../../dist/agent/network/host-network.js';
import { createRootLogger } from '../../dist/shared/log.js';
import { now } from './lib.mjs';

export const ROOT = resolve(import.meta.dirname, '../..');
export const WORK = process.env.BENCH_DIR ?? '/var/tmp/slipway-bench-start';
export const STACK = join(WORK, 'stacks', 'busybox');
export const CGROUP_PARENT = '/slipway-bench';
export const log = createRootLogger({ level: 'silent' });
// Host ports: the bench's host-namespace dynos and bare runs listen on 21000-28999 (below the
// ephemeral range 32768-60999, where an outgoing connection may hold the port); the routes
// of its networked ones (the DNAT map) use 15000-16999 and the scale loop 17000-17099
// (start-network.mjs). An agent's dynos on the same host never listen on host ports (each has
// its own namespace) and loopback is never DNATed, so the ranges may overlap its portRange.
export const NET_DYNO_PORT = 15000;
export const NET_BARE_PORT = 16000;

/** A listener that resolves `next()` with the time of the next connection. */
export async function probe() {
  let waiter;
  const srv = createServer((sock) => { const t = now(); sock.destroy(); waiter?.(t); waiter = undefined; });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return { port: srv.address().port, next: () => new Promise((r) => { waiter = r; }), close: () => srv.close() };
}

export async function untilAccepting(port, host = '127.0.0.1', deadlineMs = 20_000) {
  const end = now() + deadlineMs;
  while (now() < end) {
    const ok = await new Promise((r) => {
      const s = connect(port, host);
      s.once('connect', () => { s.destroy(); r(true); });
      s.once('error', () => r(false));
    });
    if (ok) return now();
    await new Promise((r) => setTimeout(r, 1));
  }
  throw new Error(`port ${host}:${port} never accepted`);
}

function slugTgz(name, files) {
  const src = join(WORK, `src-${name}`);
  const out = join(WORK, `${name}.tgz`);
  if (existsSync(out)) return out;
  rmSync(src, { recursive: true, force: true });
  mkdirSync(join(src, 'app'), { recursive: true });
  files(join(src, 'app'));
  execFileSync('tar', ['-czf', out, '-C', src, '--owner=0', '--group=0', './app']);
  rmSync(src, { recursive: true, force: true });
  return out;
}

export async function cachedSlugs() {
  const store = createSlugStore({ dir: join(WORK, 'slugs'), owner: { uid: 64000, gid: 64000 }, budgetBytes: 20 * 1024 ** 3, floorBytes: 1024 ** 3, s3: {} }, log);
  await store.init();
  const one = slugTgz('slug-1mb', (app) => writeFileSync(join(app, 'blob'), randomBytes(1024 * 1024)));
  // The 150 MB slug of the slug benchmark (node binary + node_modules files), when it is there;
  // else 150 files of 1 MB.
  const big = existsSync('/var/tmp/slipway-bench/www/slug.tgz') ? '/var/tmp/slipway-bench/www/slug.tgz'
    : slugTgz('slug-150mb', (app) => { for (let i = 0; i < 150; i++) writeFileSync(join(app, `f${i}`), randomBytes(1024 * 1024)); });
  const get = async (file) => store.ensure({ url: `file://${file}`, sha256: createHash('sha256').update(readFileSync(file)).digest('hex') });
  return { small: await get(one), large: await get(big) };
}

let seq = 0;
function dynoSpec(driverName, slugDir, command, port) {
  const id = `bench-${driverName}-${process.pid}-${++seq}`;
  return {
    dynoId: id, dir: join(WORK, 'dynos', id), stackName: 'busybox', stackDir: STACK, slugDir,
    args: dynoArgs(command, '/bin/sh'), env: dynoEnv({ name: 'web.1', env: {} }, port), cwd: '/app',
    user: { uid: 64000, gid: 64000 }, hostname: id,
    limits: { memoryBytes: 512 * 1024 * 1024, cpuShares: 1024, pidsLimit: 256, nofile: 10000 },
  };
}

export async function ours(driver, slugDir, mode, p, steps) {
  const port = 21000 + (seq % 2000);
  const command = mode === 'running' ? `echo x | nc 127.0.0.1 ${p.port}` : 'httpd -f -p $PORT -h /app';
  const spec = dynoSpec(driver.name, slugDir, command, mode === 'accepting' ? port : undefined);
  const seen = mode === 'running' ? p.next() : undefined;
  const t0 = now();
  const h = await driver.start(spec);
  const tStart = now();
  try {
    const t1 = mode === 'running' ? await seen : await untilAccepting(port);
    steps?.push({ acquire: 0, start: tStart - t0, route: 0, probe: t1 - tStart });
    return t1 - t0;
  } finally {
    await stopDyno(driver, h);
  }
}

async function stopDyno(driver, h) {
  await driver.signal(h, 'SIGKILL');
  await driver.wait(h);
  await driver.destroy(h);
}

/**
 * A web dyno's start as the agent's launch does it (agent/dynos/launch.ts): a network from
 * the pool (`acquire`), then the container joining it and the dyno's route (host port -> its
 * address) at the same time; the sample ends when httpd accepts at the dyno's address. The
 * steps are kept in `steps` (acquire; start and route from the acquire's end; accepting after
 * both). Between rounds (untimed) the network goes and the pool is refilled, so every round
 * takes a ready namespace, as a start on a quiet host does.
 *
 * `hold` (diagnostics, start-network.mjs hold()): 'refill' keeps the pool's refill, 'all' the
 * refill and the route, until the dyno accepts; then the route is not waited for before the
 * probe (the agent waits for it).
 */
export async function oursNetworked(driver, slugDir, net, steps, { hold } = {}) {
  let port = NET_DYNO_PORT + 500 + (seq % 500);
  let spec = dynoSpec(driver.name, slugDir, 'httpd -f -p $PORT -h /app', port);
  let dn, h, route, pooled;
  const open = hold ? net.hold(hold === 'all' ? ['ip', 'nft'] : ['ip']) : undefined;
  const t0 = now();
  try {
    ({ net: dn, port: pooled } = await net.acquire({ stack: 'busybox', hostname: spec.hostname }, true));
    const t1 = now();
    let tStart = 0, tRoute = 0;
    // A ready namespace comes with its port routed (as the agent's launch.ts); else route now.
    if (pooled !== undefined) {
      port = pooled;
      spec = dynoSpec(driver.name, slugDir, 'httpd -f -p $PORT -h /app', port);
    }
    route = pooled !== undefined ? Promise.resolve().then(() => { tRoute = now(); }) : net.host.route(port, dn).then(() => { tRoute = now(); });
    route.catch(() => undefined); // awaited below; a rejection before that is not unhandled
    const start = driver.start({ ...spec, network: { netns: dn.netns, path: join(NETNS_DIR, dn.netns), resolvConf: net.resolvConfFile } }).then((x) => { tStart = now(); return x; });
    const [started, routed] = await Promise.allSettled([start, hold === 'all' ? undefined : route]);
    net.host.refill();
    if (started.status === 'rejected') throw started.reason;
    h = started.value;
    if (routed.status === 'rejected') throw routed.reason;
    const t2 = await untilAccepting(port, dn.address);
    open?.();
    await route;
    steps.push({ acquire: t1 - t0, start: tStart - t1, route: tRoute - t1, probe: t2 - Math.max(tStart, hold === 'all' ? 0 : tRoute) });
    return t2 - t0;
  } finally {
    open?.();
    if (h) await stopDyno(driver, h);
    // A failed route leaves nothing to remove; unroute of a port the table lacks is a no-op.
    if (route) await route.catch(() => undefined);
    if (dn) await net.host.unroute(port);
    if (pooled !== undefined) net.ports.release(pooled);
    if (dn) await net.host.release(dn);
    net.forgetNeighbours();
    await net.waitPoolFull();
  }
}
