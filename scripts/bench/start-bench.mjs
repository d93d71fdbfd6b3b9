// Driver of scripts/bench/start.sh; see there. Plain JS over dist/, so it measures the built
// agent as it runs.
//
// "Running" is observed the same way for a dyno and for the bare runtime: the container's
// command first connects to a TCP listener of this process (dynos and bare containers share the
// host's network), and the time from the start request to that connection is the sample.
// "Accepting" is the time until a busybox httpd on the dyno's port takes a TCP connection,
// polled every millisecond.
import { spawn, execFileSync } from 'node:child_process';
import { createServer, connect } from 'node:net';
import { chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { createDriver } from '../../dist/agent/runtime/factory.js';
import { buildOciConfig } from '../../dist/agent/runtime/runc/oci-config.js';
import { buildLxcConfig } from '../../dist/agent/runtime/lxc/lxc-config.js';
import { ociSeccomp, lxcSeccomp } from '../../dist/agent/runtime/seccomp/profile.js';
import { detectCgroupVersion } from '../../dist/agent/host/cgroups.js';
import { dynoArgs, dynoEnv } from '../../dist/agent/dynos/entrypoint.js';
import { createSlugStore } from '../../dist/agent/slugs/factory.js';
import { createRootLogger } from '../../dist/shared/log.js';

const ROOT = resolve(import.meta.dirname, '../..');
const ROUNDS = Number(process.argv[2] ?? 10);
const WORK = process.env.BENCH_DIR ?? '/var/tmp/slipway-bench-start';
const STACK = join(WORK, 'stacks', 'busybox');
const CGROUP_PARENT = '/slipway-bench';
const log = createRootLogger({ level: 'silent' });
const now = () => Number(process.hrtime.bigint()) / 1e6;
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

/** A listener that resolves `next()` with the time of the next connection. */
async function probe() {
  let waiter;
  const srv = createServer((sock) => { const t = now(); sock.destroy(); waiter?.(t); waiter = undefined; });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return { port: srv.address().port, next: () => new Promise((r) => { waiter = r; }), close: () => srv.close() };
}

async function untilAccepting(port, deadlineMs = 20_000) {
  const end = now() + deadlineMs;
  while (now() < end) {
    const ok = await new Promise((r) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); r(true); });
      s.once('error', () => r(false));
    });
    if (ok) return now();
    await new Promise((r) => setTimeout(r, 1));
  }
  throw new Error(`port ${port} never accepted`);
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

async function cachedSlugs() {
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

async function ours(driver, slugDir, mode, p) {
  const port = 30000 + (seq % 2000);
  const command = mode === 'running' ? `echo x | nc 127.0.0.1 ${p.port}` : 'httpd -f -p $PORT -h /app';
  const spec = dynoSpec(driver.name, slugDir, command, mode === 'accepting' ? port : undefined);
  const seen = mode === 'running' ? p.next() : undefined;
  const t0 = now();
  const h = await driver.start(spec);
  const t1 = mode === 'running' ? await seen : await untilAccepting(port);
  await driver.signal(h, 'SIGKILL');
  await driver.wait(h);
  await driver.destroy(h);
  return t1 - t0;
}

// ---- the bare runtimes, running the same container: the dyno's own runtime config (same
// user, limits, capabilities, seccomp filter, masked paths) on the stack dir itself, without
// what slipway adds (overlay with the slug, conmon, the handle, the profile prelude).
function bareSpec(command) {
  return {
    dynoId: 'bare', dir: '/unused', stackName: 'busybox', stackDir: STACK, slugDir: '/unused', args: ['/bin/sh', '-c', command],
    env: ['PATH=/usr/bin:/bin', 'HOME=/'], cwd: '/', user: { uid: 64000, gid: 64000 }, hostname: 'bare',
    limits: { memoryBytes: 512 * 1024 * 1024, cpuShares: 1024, pidsLimit: 256, nofile: 10000 },
  };
}
const bareCommand = (mode, p, port) => (mode === 'running' ? `echo x | nc 127.0.0.1 ${p.port}` : `httpd -f -p ${port} -h /`);

function runcBundle() {
  const dir = join(WORK, 'bare-runc');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}
const seccompForRunc = ociSeccomp();
async function bareRunc(bundle, mode, p) {
  const port = 32000 + (seq % 2000);
  const id = `bench-bare-${process.pid}-${++seq}`;
  const cfg = buildOciConfig(bareSpec(bareCommand(mode, p, port)), { cgroupsPath: `${CGROUP_PARENT}/${id}`, seccomp: seccompForRunc });
  cfg.root = { path: STACK, readonly: true };
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(cfg));
  const seen = mode === 'running' ? p.next() : undefined;
  const t0 = now();
  const child = spawn('runc', ['run', '--bundle', bundle, id], { stdio: 'ignore' });
  const t1 = mode === 'running' ? await seen : await untilAccepting(port);
  execFileSync('runc', ['delete', '--force', id], { stdio: 'ignore' });
  await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
  return t1 - t0;
}

function lxcDir() {
  const dir = join(WORK, 'bare-lxc');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'seccomp'), lxcSeccomp());
  return dir;
}
async function bareLxc(dir, mode, p) {
  const port = 34000 + (seq % 2000);
  const id = `bench-bare-${process.pid}-${++seq}`;
  const cgroupPath = `${CGROUP_PARENT}/${id}`;
  const file = join(dir, `${id}.conf`);
  writeFileSync(file, buildLxcConfig({ ...bareSpec(''), rootfs: STACK, cgroupPath, cgroupVersion: detectCgroupVersion(), seccompFile: join(dir, 'seccomp'), stopHook: '/bin/true', logFile: join(dir, 'lxc.log') }));
  const seen = mode === 'running' ? p.next() : undefined;
  const t0 = now();
  const child = spawn('lxc-execute', ['-n', id, '-P', dir, '-f', file, '--', '/bin/sh', '-c', bareCommand(mode, p, port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const t1 = await (mode === 'running' ? seen : untilAccepting(port)).catch((err) => {
    throw new Error(`bare lxc-execute ${id}: ${err.message}; exit ${child.exitCode}; stderr: ${stderr.slice(0, 2000)}`);
  });
  if (child.exitCode === null) {
    execFileSync('sh', ['-c', `for p in $(cat /sys/fs/cgroup/pids${cgroupPath}/cgroup.procs /sys/fs/cgroup${cgroupPath}/cgroup.procs 2>/dev/null); do kill -9 $p 2>/dev/null; done; true`]);
    await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
  }
  rmSync(file, { force: true });
  return t1 - t0;
}

async function bareDocker(image, mode, p) {
  const port = 36000 + (seq % 2000);
  const name = `bench-bare-${process.pid}-${++seq}`;
  const seen = mode === 'running' ? p.next() : undefined;
  const t0 = now();
  // Docker's own hardening flags for the same container (its default seccomp profile applies).
  const child = spawn('docker', ['run', '-d', '--name', name, '--network', 'host', '--user', '64000:64000', '--security-opt', 'no-new-privileges',
    '--cap-drop', 'ALL', '--cap-add', 'AUDIT_WRITE', '--cap-add', 'KILL', '--cap-add', 'NET_BIND_SERVICE', '--memory', '512m', '--memory-swap', '512m',
    '--pids-limit', '256', '--ulimit', 'nofile=10000:10000', image, '/bin/sh', '-c',
    mode === 'running' ? `echo x | nc 127.0.0.1 ${p.port}` : `httpd -f -p ${port} -h /`], { stdio: 'ignore' });
  const t1 = mode === 'running' ? await seen : await untilAccepting(port);
  await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
  execFileSync('docker', ['rm', '-f', name], { stdio: 'ignore' });
  return t1 - t0;
}

function dockerAnswers() {
  try { execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 5000 }); return true; } catch { return false; }
}

async function compare(label, runOurs, runBare) {
  const a = [], b = [];
  for (let i = 0; i < ROUNDS + 1; i++) {
    // Round 0 warms both paths (page cache, image, compiled validators) and is not counted.
    const order = i % 2 === 0 ? [runOurs, runBare] : [runBare, runOurs];
    const r0 = await order[0](); const r1 = await order[1]();
    if (i === 0) continue;
    if (i % 2 === 0) { a.push(r0); b.push(r1); } else { b.push(r0); a.push(r1); }
  }
  process.stderr.write(`${label}: ours [${a.map((x) => x.toFixed(0)).join(', ')}] bare [${b.map((x) => x.toFixed(0)).join(', ')}]\n`);
  return { label, ours: median(a), bare: median(b), ratio: median(a) / median(b), a, b };
}

async function main() {
  mkdirSync(WORK, { recursive: true });
  // What an interrupted earlier run left: overlay mounts and dyno dirs.
  execFileSync('sh', ['-c', `grep ' ${WORK}/dynos/' /proc/mounts | cut -d' ' -f2 | xargs -r umount -l; true`]);
  rmSync(join(WORK, 'dynos'), { recursive: true, force: true });
  if (!existsSync(join(STACK, 'bin', 'sh'))) {
    mkdirSync(join(WORK, 'stacks'), { recursive: true });
    execFileSync(join(ROOT, 'scripts/build-busybox-stack.sh'), [STACK], { stdio: 'inherit' });
  }
  const { small, large } = await cachedSlugs();
  const p = await probe();
  const rows = [];
  const targets = { runc: 1.3, lxc: 1.3, docker: 1.1 };
  const baseline = { runc: 'runc run', lxc: 'lxc-execute', docker: 'docker run -d' };
  process.on('exit', () => {
    // Whatever a failed round left: containers of ours, overlay mounts.
    try { execFileSync('sh', ['-c', `docker ps -aq --filter label=slipway.managed=true --filter name=bench- | xargs -r docker rm -f; grep ' ${WORK}/' /proc/mounts | cut -d' ' -f2 | xargs -r umount -l`], { stdio: 'ignore' }); } catch { /* best effort */ }
  });
  try {
    const names = ['runc', 'lxc', ...(dockerAnswers() ? ['docker'] : [])];
    for (const name of names) {
      const driver = await createDriver(name, { cgroupParent: CGROUP_PARENT, log });
      let bare;
      if (name === 'runc') { const bundle = runcBundle(); bare = (mode) => bareRunc(bundle, mode, p); }
      if (name === 'lxc') { const dir = lxcDir(); bare = (mode) => bareLxc(dir, mode, p); }
      if (name === 'docker') {
        // The engine's image of the stack, made by the driver's first start (warm-up round).
        await ours(driver, small.path, 'running', p);
        const image = execFileSync('docker', ['images', '--format', '{{.Repository}}:{{.Tag}}', '--filter', 'reference=slipway-stack/busybox'], { encoding: 'utf8' }).trim().split('\n')[0];
        bare = (mode) => bareDocker(image, mode, p);
      }
      for (const mode of ['running', 'accepting']) {
        rows.push({ name, mode, ...(await compare(`${name} ${mode}`, () => ours(driver, small.path, mode, p), () => bare(mode))) });
      }
    }
    const runc = await createDriver('runc', { cgroupParent: CGROUP_PARENT, log });
    const sizes = await compare('runc running, 150 MB vs 1 MB slug', () => ours(runc, large.path, 'running', p), () => ours(runc, small.path, 'running', p));

    const line = (k, v) => console.log(`${k.padEnd(46)} ${v}`);
    console.log(`dyno start vs the bare runtime, busybox stack, cached 1 MB slug; median of ${ROUNDS} rounds, alternating order`);
    for (const r of rows) {
      const target = targets[r.name];
      line(`${r.name} ${r.mode}: dyno / ${baseline[r.name]} (ms)`, `${r.ours.toFixed(1)} / ${r.bare.toFixed(1)}  ratio ${r.ratio.toFixed(2)}x` + (r.mode === 'running' ? `  (target < ${target}: ${r.ratio < target ? 'MET' : 'MISSED'})` : ''));
    }
    line('slug size, runc running: 150 MB / 1 MB (ms)', `${sizes.ours.toFixed(1)} / ${sizes.bare.toFixed(1)}  ratio ${sizes.ratio.toFixed(2)}x  (same within noise: ${Math.abs(sizes.ratio - 1) < 0.1 ? 'yes' : 'NO'})`);
  } finally {
    p.close();
    execFileSync('sh', ['-c', `for d in /sys/fs/cgroup/*${CGROUP_PARENT} /sys/fs/cgroup${CGROUP_PARENT}; do [ -d "$d" ] && find "$d" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null; rmdir "$d" 2>/dev/null; done; true`]);
    rmSync(join(WORK, 'dynos'), { recursive: true, force: true });
  }
}

main().catch((err) => { console.error(err); process.exit(1); });
