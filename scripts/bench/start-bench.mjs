// Driver of scripts/bench/start.sh; see there. Plain JS over dist/, so it measures the built
// agent as it runs. The samples: start-dyno.mjs (dynos through the agent's drivers),
// start-bare.mjs (the bare runtimes), start-network.mjs (the bench's dyno networks and the
// scale loop). Every figure is a median of ROUNDS samples taken in the same run as its
// baseline, in alternating (two) or rotating (more) order after one uncounted warm-up round.
//
// Cleanup (also on failure and on SIGINT/SIGTERM, which stop the run at the next sample):
// every sample removes its container and network itself; then finally{} removes the bench's
// networks (HostNetwork.destroy: namespaces, veths, bridges, tables, leases), sweeps bench
// containers a failed sample left, and the cgroups and dyno dirs; the exit handler unmounts.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { createDriver } from '../../dist/agent/runtime/factory.js';
import { median } from './lib.mjs';
import { CGROUP_PARENT, ROOT, STACK, WORK, cachedSlugs, log, ours, oursNetworked, probe } from './start-dyno.mjs';
import { bareDocker, bareLxc, bareRunc, dockerAnswers, lxcDir, runcBundle } from './start-bare.mjs';
import { benchNetworks, destroyAll, networkLeftovers, scaleLoop } from './start-network.mjs';

const ROUNDS = Number(process.argv[2] ?? 10);
let interrupted;
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => { interrupted = sig; });
const checkInterrupted = () => { if (interrupted) throw new Error(`stopped by ${interrupted}`); };

async function compare(label, runOurs, runBare) {
  const a = [], b = [];
  for (let i = 0; i < ROUNDS + 1; i++) {
    checkInterrupted();
    // Round 0 warms both paths (page cache, image, compiled validators) and is not counted.
    const order = i % 2 === 0 ? [runOurs, runBare] : [runBare, runOurs];
    const r0 = await order[0](); const r1 = await order[1]();
    if (i === 0) continue;
    if (i % 2 === 0) { a.push(r0); b.push(r1); } else { b.push(r0); a.push(r1); }
  }
  process.stderr.write(`${label}: ours [${a.map((x) => x.toFixed(0)).join(', ')}] bare [${b.map((x) => x.toFixed(0)).join(', ')}]\n`);
  return { label, ours: median(a), bare: median(b), ratio: median(a) / median(b), a, b };
}

/** `variants`: name -> sample. One of each per round, the order rotating by one each round,
 * so that every variant runs in every position equally often; round 0 is the warm-up. */
async function compareMany(label, variants) {
  const names = Object.keys(variants);
  const samples = Object.fromEntries(names.map((n) => [n, []]));
  for (let i = 0; i < ROUNDS + 1; i++) {
    for (let k = 0; k < names.length; k++) {
      checkInterrupted();
      const name = names[(i + k) % names.length];
      const ms = await variants[name]();
      if (i > 0) samples[name].push(ms);
    }
  }
  for (const n of names) process.stderr.write(`${label} ${n}: [${samples[n].map((x) => x.toFixed(0)).join(', ')}]\n`);
  return Object.fromEntries(names.map((n) => [n, median(samples[n])]));
}

const stepMedians = (steps) => Object.fromEntries(['acquire', 'start', 'route', 'probe'].map((k) => [k, median(steps.slice(1).map((s) => s[k]))]));

/** runc and LXC (issue 12 item 4): the networked dyno, the same dyno in the host's namespace,
 * the bare runtime in a namespace its script makes, in a ready one, and in the host's. */
async function networkRows(drivers, small, p, net) {
  const rows = [];
  for (const [name, driver, bare] of drivers) {
    const steps = [], held = [], alone = [], host = [];
    const m = await compareMany(`${name} accepting, network`, {
      dyno: () => oursNetworked(driver, small.path, net, steps),
      dynoHeld: () => oursNetworked(driver, small.path, net, held, { hold: 'refill' }),
      dynoAlone: () => oursNetworked(driver, small.path, net, alone, { hold: 'all' }),
      dynoHost: () => ours(driver, small.path, 'accepting', p, host),
      bareScript: () => bare('accepting', { bench: net, ready: false }),
      bareReady: () => bare('accepting', { bench: net, ready: true }),
      bareHost: () => bare('accepting'),
    });
    rows.push({ name, ...m, steps: stepMedians(steps), heldSteps: stepMedians(held), aloneSteps: stepMedians(alone), hostSteps: stepMedians(host) });
  }
  return rows;
}

/** Docker's variant, informative (no target in the issue): its network is made on the start
 * path with a pause container (agent/runtime/docker/pause.ts), there is no pool. */
async function dockerNetworkRow(driver, small, p, net) {
  const steps = [];
  const m = await compareMany('docker accepting, network', {
    dyno: () => oursNetworked(driver, small.path, net, steps),
    dynoHost: () => ours(driver, small.path, 'accepting', p),
  });
  return { ...m, steps: stepMedians(steps) };
}

const line = (k, v, pad = 46) => console.log(`${k.padEnd(pad)} ${v}`);
const netLine = (k, v) => line(k, v, 56);
const ms = (x) => x.toFixed(1);
const verdict = (ok) => (ok ? 'MET' : 'MISSED');
const stepText = (s) => `acquire ${ms(s.acquire)}, then at once: driver.start ${ms(s.start)}, route ${ms(s.route)}; then accepting ${ms(s.probe)}`;

function printNetwork(rows, docker, scale) {
  const baseline = { runc: 'runc run', lxc: 'lxc-execute' };
  console.log(`\ndyno start with its own network (issue 12): busybox httpd web dyno, accepting at its address; median of ${ROUNDS} rounds, rotating order`);
  for (const r of rows) {
    const b = baseline[r.name];
    netLine(`${r.name}: dyno with network / script + ${b} (ms)`, `${ms(r.dyno)} / ${ms(r.bareScript)}  ratio ${(r.dyno / r.bareScript).toFixed(2)}x  (target <= 1.3: ${verdict(r.dyno / r.bareScript <= 1.3)})`);
    netLine(`${r.name}: network added, dyno with - without (ms)`, `${ms(r.dyno)} - ${ms(r.dynoHost)} = ${ms(r.dyno - r.dynoHost)}  (target <= 5: ${verdict(r.dyno - r.dynoHost <= 5)})`);
    netLine(`${r.name}: script's network, script + ${b} - ${b} in it (ms)`, `${ms(r.bareScript)} - ${ms(r.bareReady)} = ${ms(r.bareScript - r.bareReady)}`);
    netLine(`${r.name}: ${b} in a ready namespace / in the host's (ms)`, `${ms(r.bareReady)} / ${ms(r.bareHost)}  ratio ${(r.bareReady / r.bareHost).toFixed(2)}x`);
    netLine(`${r.name}: dyno with network / ${b} in a ready namespace`, `${(r.dyno / r.bareReady).toFixed(2)}x;  dyno in the host's / ${b} there ${(r.dynoHost / r.bareHost).toFixed(2)}x`);
    netLine(`${r.name}: its steps (median ms)`, stepText(r.steps));
    netLine(`${r.name}: with the pool's refill held until accepting (ms)`, `${ms(r.dynoHeld)} (the refill beside the start: ${ms(r.dyno - r.dynoHeld)});  ${stepText(r.heldSteps)}`);
    netLine(`${r.name}: with the refill and the route held (ms)`, `${ms(r.dynoAlone)} (the route beside the start: ${ms(r.dynoHeld - r.dynoAlone)}; the rest over no network: ${ms(r.dynoAlone - r.dynoHost)});  driver.start ${ms(r.aloneSteps.start)}, then accepting ${ms(r.aloneSteps.probe)}`);
    netLine(`${r.name}: without network, its steps (median ms)`, `driver.start ${ms(r.hostSteps.start)}; then accepting ${ms(r.hostSteps.probe)}`);
  }
  if (typeof docker === 'string') netLine('docker: with network', docker);
  else if (docker) {
    netLine('docker: network added, dyno with - without (ms)', `${ms(docker.dyno)} - ${ms(docker.dynoHost)} = ${ms(docker.dyno - docker.dynoHost)}  (informative; a pause container per start)`);
    netLine('docker: its steps (median ms)', stepText(docker.steps));
  }
  console.log(`\nscale: ${scale.count} networks with a route each, made one after another through HostNetwork (acquire + route, no pool)`);
  netLine('setup, median of the first 10 / the last 10 (ms)', `${ms(scale.first)} / ${ms(scale.last)}  ratio ${scale.ratio.toFixed(2)}x  (target ~1.0, flat within 20%: ${verdict(scale.ratio <= 1.2)})`);
  netLine(`setup, median of all ${scale.count} (ms)`, `${ms(scale.all)}  (least-squares growth ${(scale.slope * 100).toFixed(1)} ms per 100 networks)`);
  netLine(`teardown of all ${scale.count} at once (ms)`, `${ms(scale.releaseMs)} (one release each, batched)  + ${ms(scale.unrouteMs)} for their routes before`);
}

/** Bench containers a failed sample left (runc state, processes in the bench's cgroups). */
function sweepContainers() {
  const ids = /^(slipway-)?bench-(runc|lxc|docker|bare)-\d+-\d+$/;
  let listed = [];
  try { listed = execFileSync('runc', ['list', '-q'], { encoding: 'utf8' }).split('\n').filter((id) => ids.test(id)); } catch { /* no runc state */ }
  for (const id of listed) { try { execFileSync('runc', ['delete', '--force', id], { stdio: 'ignore' }); } catch { /* gone */ } }
  execFileSync('sh', ['-c', `find /sys/fs/cgroup/*${CGROUP_PARENT} /sys/fs/cgroup${CGROUP_PARENT} -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -9 2>/dev/null; true`]);
}

async function main() {
  mkdirSync(WORK, { recursive: true });
  // What an interrupted earlier run left: containers, overlay mounts and dyno dirs (its
  // networks: benchNetworks below).
  sweepContainers();
  execFileSync('sh', ['-c', `grep ' ${WORK}/dynos/' /proc/mounts | cut -d' ' -f2 | xargs -r umount -l; true`]);
  rmSync(join(WORK, 'dynos'), { recursive: true, force: true });
  if (!existsSync(join(STACK, 'bin', 'sh'))) {
    mkdirSync(join(WORK, 'stacks'), { recursive: true });
    execFileSync(join(ROOT, 'scripts/build-busybox-stack.sh'), [STACK], { stdio: 'inherit' });
  }
  // The mount point of the dynos' resolv.conf (ContainerSpec.network): a dyno's overlay makes
  // it in its upper dir, the bare runtimes run on the read-only stack itself.
  if (!existsSync(join(STACK, 'etc', 'resolv.conf'))) writeFileSync(join(STACK, 'etc', 'resolv.conf'), '');
  const { small, large } = await cachedSlugs();
  const p = await probe();
  const rows = [];
  const targets = { runc: 1.3, lxc: 1.3, docker: 1.1 };
  const baseline = { runc: 'runc run', lxc: 'lxc-execute', docker: 'docker run -d' };
  process.on('exit', () => {
    // Whatever a failed round left: containers of ours (pause ones too), overlay mounts.
    try { execFileSync('sh', ['-c', `{ docker ps -aq --filter label=slipway.managed=true --filter name=bench-; docker ps -aq --filter label=slipway.managed=true --filter name=slipway-pause.swbench; } | xargs -r docker rm -f; grep ' ${WORK}/' /proc/mounts | cut -d' ' -f2 | xargs -r umount -l`], { stdio: 'ignore' }); } catch { /* best effort */ }
  });
  // Other work on this 2-core machine moves every figure: the load is printed with them.
  const loadAtStart = loadavg()[0];
  const docker = dockerAnswers();
  const nets = await benchNetworks(WORK, log, { docker: docker ? CGROUP_PARENT : undefined, stackDir: STACK });
  const all = Object.values(nets).filter(Boolean);
  try {
    const names = ['runc', 'lxc', ...(docker ? ['docker'] : [])];
    const forNetwork = [];
    for (const name of names) {
      const driver = await createDriver(name, { cgroupParent: CGROUP_PARENT, log });
      let bare;
      if (name === 'runc') { const bundle = runcBundle(); bare = (mode, net) => bareRunc(bundle, mode, p, net); }
      if (name === 'lxc') { const dir = lxcDir(); bare = (mode, net) => bareLxc(dir, mode, p, net); }
      if (name === 'docker') {
        // The engine's image of the stack, made by the driver's first start (warm-up round).
        await ours(driver, small.path, 'running', p);
        const image = execFileSync('docker', ['images', '--format', '{{.Repository}}:{{.Tag}}', '--filter', 'reference=slipway-stack/busybox'], { encoding: 'utf8' }).trim().split('\n')[0];
        bare = (mode) => bareDocker(image, mode, p);
      } else forNetwork.push([name, driver, bare]);
      for (const mode of ['running', 'accepting']) {
        rows.push({ name, mode, ...(await compare(`${name} ${mode}`, () => ours(driver, small.path, mode, p), () => bare(mode))) });
      }
    }
    const runc = await createDriver('runc', { cgroupParent: CGROUP_PARENT, log });
    const sizes = await compare('runc running, 150 MB vs 1 MB slug', () => ours(runc, large.path, 'running', p), () => ours(runc, small.path, 'running', p));

    await nets.start.init();
    const netRows = await networkRows(forNetwork, small, p, nets.start);
    let dockerNet = docker ? 'left out: the Docker driver has no netnsFactory()' : 'left out: no Docker engine';
    if (nets.docker) {
      try {
        await nets.docker.init();
        dockerNet = await dockerNetworkRow(nets.docker.driver, small, p, nets.docker);
      } catch (err) {
        dockerNet = `left out: ${err.message.slice(0, 200)}`;
      }
    }
    checkInterrupted();
    const scale = await scaleLoop(nets.scale);

    console.log(`dyno start vs the bare runtime, busybox stack, cached 1 MB slug; median of ${ROUNDS} rounds, alternating order`);
    for (const r of rows) {
      const target = targets[r.name];
      line(`${r.name} ${r.mode}: dyno / ${baseline[r.name]} (ms)`, `${r.ours.toFixed(1)} / ${r.bare.toFixed(1)}  ratio ${r.ratio.toFixed(2)}x` + (r.mode === 'running' ? `  (target < ${target}: ${r.ratio < target ? 'MET' : 'MISSED'})` : ''));
    }
    line('slug size, runc running: 150 MB / 1 MB (ms)', `${sizes.ours.toFixed(1)} / ${sizes.bare.toFixed(1)}  ratio ${sizes.ratio.toFixed(2)}x  (same within noise: ${Math.abs(sizes.ratio - 1) < 0.1 ? 'yes' : 'NO'})`);
    printNetwork(netRows, dockerNet, scale);
    console.log(`\nload average (1 min): ${loadAtStart.toFixed(2)} at the start, ${loadavg()[0].toFixed(2)} at the end`);
  } finally {
    p.close();
    sweepContainers();
    await destroyAll(all);
    const left = networkLeftovers(all);
    if (left.length > 0) process.stderr.write(`start-bench: left behind: ${left.join(', ')}\n`);
    execFileSync('sh', ['-c', `for d in /sys/fs/cgroup/*${CGROUP_PARENT} /sys/fs/cgroup${CGROUP_PARENT}; do [ -d "$d" ] && find "$d" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null; rmdir "$d" 2>/dev/null; done; true`]);
    rmSync(join(WORK, 'dynos'), { recursive: true, force: true });
  }
}

main().catch((err) => { console.error(err); process.exit(1); });
