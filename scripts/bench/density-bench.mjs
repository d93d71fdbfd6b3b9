// Driver of scripts/bench/density.sh; see there. Runs the built coordinator and agent (dist/)
// as real processes with real runc dynos, and reads the agent's CPU time and RSS from /proc.
import { spawn, execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { API_TOKEN, getJson, http, procUsage, sleep, until } from './lib.mjs';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');
const COUNT = Number(process.argv[2] ?? 100);
const WINDOW_S = Number(process.argv[3] ?? 60);
const CGROUP_PARENT = '/slipway-bench-density';

function spawnBin(bin, args, env = {}, nodeArgs = []) {
  const child = spawn(process.execPath, [...nodeArgs, join(ROOT, 'dist', bin, 'main.js'), ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = [];
  let buf = '';
  child.stdout.on('data', (b) => { buf += b; let i; while ((i = buf.indexOf('\n')) >= 0) { try { lines.push(JSON.parse(buf.slice(0, i))); } catch { /* not JSON */ } buf = buf.slice(i + 1); } });
  child.stderr.on('data', () => {});
  const waitFor = (msg, ms = 30_000) => until(`${bin}: ${msg}`, async () => lines.find((l) => l.msg === msg), ms);
  return { child, lines, waitFor };
}

/** CPU seconds (user + system) and RSS in MB of a process. */
function usage(pid) {
  const u = procUsage(pid);
  return { cpu: u.cpu, rssMb: u.rssKb / 1024 };
}

async function idle(pid, seconds) {
  const a = usage(pid); const t0 = Date.now();
  let peak = a.rssMb;
  for (let i = 0; i < seconds; i++) { await sleep(1000); peak = Math.max(peak, usage(pid).rssMb); }
  const b = usage(pid); const wall = (Date.now() - t0) / 1000;
  return { cpuPct: ((b.cpu - a.cpu) / wall) * 100, rssMb: b.rssMb, peakRssMb: peak };
}

async function main() {
  const dir = mkdtempSync('/var/tmp/slipway-bench-density-');
  const stateDir = join(dir, 'state');
  const stackSrc = join('/tmp/slipway-test-stacks', 'busybox');
  execFileSync(join(ROOT, 'scripts/build-busybox-stack.sh'), [stackSrc], { stdio: 'ignore' });
  cpSync(stackSrc, join(stateDir, 'stacks', 'busybox'), { recursive: true, verbatimSymlinks: true });
  mkdirSync(join(dir, 'src', 'app'), { recursive: true });
  writeFileSync(join(dir, 'src', 'app', 'Procfile'), 'worker: sleep 100000\n');
  execFileSync('tar', ['-czf', join(dir, 'slug.tgz'), '-C', join(dir, 'src'), '--owner=0', '--group=0', './app']);
  const sha256 = createHash('sha256').update(readFileSync(join(dir, 'slug.tgz'))).digest('hex');
  writeFileSync(join(dir, 'sizes.json'), JSON.stringify({ tiny: { name: 'tiny', memoryMb: 32, cpuShares: 64, pidsLimit: 32 } }));
  writeFileSync(join(dir, 'token'), 'bench-token\n', { mode: 0o600 });
  // The bench's own bridge, subnet and nftables table: 100 dynos, each in its own namespace.
  const config = join(dir, 'agent.json');
  writeFileSync(config, JSON.stringify({ network: { bridge: 'swdensity0', subnet: '100.74.0.0/24', table: 'slipway_density', poolSize: 4 } }));

  const procs = [];
  const cleanup = async () => {
    // SIGTERM first (the agent exits cleanly, leaving its dynos; a profile gets written), then SIGKILL.
    for (const p of procs) { try { p.child.kill('SIGTERM'); } catch { /* gone */ } }
    await Promise.race([Promise.all(procs.map((p) => (p.child.exitCode !== null ? undefined : new Promise((r) => p.child.once('exit', r))))), sleep(10_000)]);
    for (const p of procs) { try { p.child.kill('SIGKILL'); } catch { /* gone */ } }
    try { execFileSync(process.execPath, [join(ROOT, 'dist/agent/main.js'), 'cleanup', '--config', config, '--state-dir', stateDir, '--cgroup-parent', CGROUP_PARENT], { stdio: 'ignore' }); } catch { /* best effort */ }
    execFileSync('sh', ['-c', `for d in /sys/fs/cgroup/*${CGROUP_PARENT} /sys/fs/cgroup${CGROUP_PARENT}; do [ -d "$d" ] && find "$d" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null; rmdir "$d" 2>/dev/null; done; true`]);
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('SIGINT', () => { void cleanup().finally(() => process.exit(130)); });
  try {
    const coord = spawnBin('coordinator', ['serve', '--listen', '127.0.0.1:0', '--router-listen', '127.0.0.1:0', '--sizes-file', join(dir, 'sizes.json')], { SLIPWAY_COORDINATOR_TOKEN: 'bench-token', SLIPWAY_API_TOKEN: API_TOKEN });
    procs.push(coord);
    const listening = await coord.waitFor('coordinator listening');
    const agent = spawnBin('agent', ['serve', '--config', config, '--coordinator', listening.agentUrl, '--token-file', join(dir, 'token'), '--state-dir', stateDir,
      '--address', '127.0.0.1', '--cgroup-parent', CGROUP_PARENT, '--diagnostics-listen', '127.0.0.1:0', '--agent-id', 'bench-agent', '--stop-grace-ms', '2000'],
      // SLIPWAY_BENCH_PROFILE=DIR writes a CPU profile of the agent there (node --cpu-prof).
      { SLIPWAY_LOG_LEVEL: 'warn' }, process.env.SLIPWAY_BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.SLIPWAY_BENCH_PROFILE}`] : []);
    procs.push(agent);
    await until('the agent to connect', async () => (await getJson(`${listening.apiUrl}/agents`)).find((a) => a.id === 'bench-agent' && a.connected), 30_000);
    const pid = agent.child.pid;

    process.stderr.write(`baseline: agent idle with 0 dynos for ${WINDOW_S} s\n`);
    const base = await idle(pid, WINDOW_S);

    const formation = (quantity) => ({ quantity, size: 'tiny', command: 'sleep 100000', slug: { url: `file://${join(dir, 'slug.tgz')}`, sha256 } });
    const t0 = Date.now();
    const put = await http('PUT', `${listening.apiUrl}/apps/density/formation/worker`, formation(COUNT));
    if (put.status !== 200) throw new Error(`formation refused: ${put.body}`);
    await until(`${COUNT} dynos up`, async () => (await getJson(`${listening.apiUrl}/dynos`)).filter((d) => d.state === 'up').length === COUNT, 600_000);
    const startAllS = (Date.now() - t0) / 1000;
    await sleep(10_000); // let the starts settle (GC, first memory samples, log followers)
    process.stderr.write(`measuring: agent idle with ${COUNT} dynos for ${WINDOW_S} s\n`);
    const full = await idle(pid, WINDOW_S);
    const running = execFileSync('runc', ['list', '-q'], { encoding: 'utf8' }).split('\n').filter((c) => c.startsWith('slipway-')).length;

    const line = (k, v) => console.log(`${k.padEnd(48)} ${v}`);
    console.log(`agent overhead, ${COUNT} runc worker dynos (tiny: 32 MB), idle window ${WINDOW_S} s; baseline: the same agent with 0 dynos, same run`);
    line('dynos running (runc list)', `${running}`);
    line(`time to start ${COUNT} dynos (s)`, startAllS.toFixed(1));
    line('agent CPU, 0 dynos (% of one core)', base.cpuPct.toFixed(3));
    line(`agent CPU, ${COUNT} dynos (% of one core)`, `${full.cpuPct.toFixed(3)}  (target < 1: ${full.cpuPct < 1 ? 'MET' : 'MISSED'})`);
    line('agent RSS, 0 dynos (MB)', base.rssMb.toFixed(1));
    line(`agent RSS, ${COUNT} dynos (MB, peak in window)`, `${full.rssMb.toFixed(1)} (${full.peakRssMb.toFixed(1)})  (target < 120: ${full.peakRssMb < 120 ? 'MET' : 'MISSED'})`);
    line('ratio RSS 100 dynos / 0 dynos', `${(full.rssMb / base.rssMb).toFixed(2)}x`);

    await http('PUT', `${listening.apiUrl}/apps/density/formation/worker`, formation(0));
    await until('all dynos down', async () => (await getJson(`${listening.apiUrl}/dynos`)).every((d) => d.state === 'down'), 300_000);
  } finally {
    await cleanup();
  }
}

main().catch((err) => { console.error(err); process.exit(1); });
