// The bare runtimes of the start benchmark (start-bench.mjs), running the same container as a
// dyno: the dyno's own runtime config (same user, limits, capabilities, seccomp filter,
// masked paths) on the stack dir itself, without what slipway adds (overlay with the slug,
// conmon, the handle, the profile prelude): `runc run`, `lxc-execute`, `docker run -d`.
// With a network (issue 12), the namespace a shell script makes (start-network.mjs).
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildOciConfig } from '../../dist/agent/runtime/runc/oci-config.js';
import { buildLxcConfig } from '../../dist/agent/runtime/lxc/lxc-config.js';
import { ociSeccomp, lxcSeccomp } from '../../dist/agent/runtime/seccomp/profile.js';
import { detectCgroupVersion } from '../../dist/agent/host/cgroups.js';
import { now } from './lib.mjs';
import { CGROUP_PARENT, NET_BARE_PORT, STACK, WORK, untilAccepting } from './start-dyno.mjs';

let seq = 0;

const exited = (child) => new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', r)));

/** Rejects when a bare runtime's process ends before its port accepts (with its stderr), so
 * that a failed run says why instead of timing out. */
function failure(child, what) {
  let stderr = '';
  child.stderr?.on('data', (d) => { stderr += d; });
  return new Promise((_, rej) => child.once('exit', (code, sig) => rej(new Error(`${what} ended (${code ?? sig}): ${stderr.slice(0, 2000)}`))));
}

/** The script's `up` line: its network is made (start-network.mjs scriptNetwork). */
function scriptUp(child, what) {
  return Promise.race([failure(child, what), new Promise((r) => {
    let out = '';
    child.stdout.on('data', (d) => { out += d; if (out.includes('up\n')) r(); });
  })]);
}

function bareSpec(command, network) {
  return {
    ...(network ? { network } : {}),
    dynoId: 'bare', dir: '/unused', stackName: 'busybox', stackDir: STACK, slugDir: '/unused', args: ['/bin/sh', '-c', command],
    env: ['PATH=/usr/bin:/bin', 'HOME=/'], cwd: '/', user: { uid: 64000, gid: 64000 }, hostname: 'bare',
    limits: { memoryBytes: 512 * 1024 * 1024, cpuShares: 1024, pidsLimit: 256, nofile: 10000 },
  };
}
const bareCommand = (mode, p, port) => (mode === 'running' ? `echo x | nc 127.0.0.1 ${p.port}` : `httpd -f -p ${port} -h /`);

/**
 * The network of a bare run (`net`: undefined for the host's): `{ bench, ready }`. With
 * `ready: false` the timed process is the script that makes the namespace (veth, address, map
 * element) and then execs the bare runtime; with `ready: true` the script ran (untimed) first.
 */
async function bareNetwork(net) {
  if (!net) return undefined;
  const n = await net.bench.scriptNetwork(NET_BARE_PORT + (seq % 1000));
  if (net.ready) execFileSync('sh', ['-c', n.script], { stdio: 'ignore' });
  return n;
}

/** The bare runtime's process: `argv` itself, or the network script exec'ing it. */
function spawnBare(argv, n, net) {
  if (!n || net.ready) return spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  const q = (a) => `'${a.replace(/'/g, "'\\''")}'`;
  return spawn('sh', ['-c', `${n.script}\nexec ${argv.map(q).join(' ')} </dev/null >/dev/null`], { stdio: ['ignore', 'pipe', 'pipe'] });
}

async function untilBareAccepting(child, id, port, n, net) {
  if (!n) return untilAccepting(port);
  if (!net.ready) await scriptUp(child, `network script of ${id}`);
  return Promise.race([untilAccepting(port, n.address), failure(child, `bare ${id}`)]);
}

export function runcBundle() {
  const dir = join(WORK, 'bare-runc');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}
const seccompForRunc = ociSeccomp();
export async function bareRunc(bundle, mode, p, net) {
  const n = await bareNetwork(net);
  const port = n ? n.port : 23000 + (seq % 2000);
  const id = `bench-bare-${process.pid}-${++seq}`;
  try {
    const cfg = buildOciConfig(bareSpec(bareCommand(mode, p, port), n?.container), { cgroupsPath: `${CGROUP_PARENT}/${id}`, seccomp: seccompForRunc });
    cfg.root = { path: STACK, readonly: true };
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(cfg));
    const seen = mode === 'running' ? p.next() : undefined;
    const t0 = now();
    const child = n ? spawnBare(['runc', 'run', '--bundle', bundle, id], n, net) : spawn('runc', ['run', '--bundle', bundle, id], { stdio: 'ignore' });
    try {
      const t1 = mode === 'running' ? await seen : await untilBareAccepting(child, id, port, n, net);
      return t1 - t0;
    } finally {
      try { execFileSync('runc', ['delete', '--force', id], { stdio: 'ignore' }); } catch { /* never created */ }
      await exited(child);
    }
  } finally {
    if (n) await net.bench.dropScriptNetwork(n);
  }
}

export function lxcDir() {
  const dir = join(WORK, 'bare-lxc');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'seccomp'), lxcSeccomp());
  return dir;
}
export async function bareLxc(dir, mode, p, net) {
  const n = await bareNetwork(net);
  const port = n ? n.port : 25000 + (seq % 2000);
  const id = `bench-bare-${process.pid}-${++seq}`;
  const cgroupPath = `${CGROUP_PARENT}/${id}`;
  const file = join(dir, `${id}.conf`);
  try {
    const network = n ? { network: { path: n.container.path, resolvConf: n.container.resolvConf } } : {};
    writeFileSync(file, buildLxcConfig({ ...bareSpec(''), rootfs: STACK, cgroupPath, cgroupVersion: detectCgroupVersion(), seccompFile: join(dir, 'seccomp'), stopHook: '/bin/true', logFile: join(dir, 'lxc.log'), ...network }));
    const seen = mode === 'running' ? p.next() : undefined;
    const argv = ['lxc-execute', '-n', id, '-P', dir, '-f', file, '--', '/bin/sh', '-c', bareCommand(mode, p, port)];
    const t0 = now();
    const child = n ? spawnBare(argv, n, net) : spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    try {
      const t1 = await (mode === 'running' ? seen : untilBareAccepting(child, id, port, n, net)).catch((err) => {
        throw new Error(`bare lxc-execute ${id}: ${err.message}; exit ${child.exitCode}; stderr: ${stderr.slice(0, 2000)}`);
      });
      return t1 - t0;
    } finally {
      if (child.exitCode === null) {
        execFileSync('sh', ['-c', `for p in $(cat /sys/fs/cgroup/pids${cgroupPath}/cgroup.procs /sys/fs/cgroup${cgroupPath}/cgroup.procs 2>/dev/null); do kill -9 $p 2>/dev/null; done; true`]);
        await exited(child);
      }
    }
  } finally {
    rmSync(file, { force: true });
    if (n) await net.bench.dropScriptNetwork(n);
  }
}

export async function bareDocker(image, mode, p) {
  const port = 27000 + (seq % 2000);
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

export function dockerAnswers() {
  try { execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 5000 }); return true; } catch { return false; }
}
