// Driver of scripts/bench/slug-files.sh; see there. Plain JS over dist/ so it measures the
// built extractor exactly as the agent runs it. Slugs are made while they are read (empty
// files: headers only), so nothing but the extracted trees touches the disk.
import { spawn } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmdirSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { Header } from 'tar';
import { extractSlug } from '../../dist/agent/slugs/extract.js';
import { DEFAULT_SLUG_LIMITS } from '../../dist/agent/slugs/budget.js';
import { detectCgroupVersion } from '../../dist/agent/host/cgroups.js';
import { createRootLogger } from '../../dist/shared/log.js';

const FILES = Number(process.argv[2] ?? 200_000);
const CONTENDED = Number(process.argv[3] ?? 50_000);
const ROUNDS = Number(process.argv[4] ?? 3);
const WORK = process.env.BENCH_DIR ?? '/var/tmp/slipway-bench-files';
const OWNER = { uid: 64000, gid: 64000 };
const PARENT = `/slipway-bench-${process.pid}`;
const VERSION = detectCgroupVersion();
const log = createRootLogger({ level: 'silent' });
const TARGS = ['-x', '-f', '-', '--no-same-owner', '--no-same-permissions', '--no-acls', '--no-xattrs', '--no-selinux'];
const TICK = 100; // USER_HZ on Linux

const fmt = (n) => Math.round(n).toLocaleString('en-US');

function header(path, type) {
  const b = Buffer.alloc(512);
  new Header({ path, type, mode: type === 'Directory' ? 0o755 : 0o644, size: 0, mtime: new Date(0), uid: 0, gid: 0 }).encode(b, 0);
  return b;
}

/** A tar of `n` empty files under app/, `perDir` to a directory (0: all in app/). */
function* slugTar(n, perDir) {
  let batch = [header('./app/', 'Directory')];
  for (let i = 0; i < n; i++) {
    const d = perDir ? `d${Math.floor(i / perDir)}/` : '';
    if (perDir && i % perDir === 0) batch.push(header(`./app/${d}`, 'Directory'));
    batch.push(header(`./app/${d}f${i}`, 'File'));
    if (batch.length >= 1024) { yield Buffer.concat(batch); batch = []; }
  }
  batch.push(Buffer.alloc(1024));
  yield Buffer.concat(batch);
}

let runs = 0;
function freshDir(name) {
  const dir = join(WORK, `${String(runs++).padStart(2, '0')}-${name}`);
  mkdirSync(dir, { recursive: true });
  chownSync(dir, OWNER.uid, OWNER.gid);
  return dir;
}

/** GNU tar alone, as the extractor runs it (the dyno user, the same flags): wall and CPU. */
function tarAlone(dir, n, perDir) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn('/usr/bin/time', ['-f', '%U %S', 'tar', ...TARGS], { cwd: dir, uid: OWNER.uid, gid: OWNER.gid, stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b) => { err += b; });
    Readable.from(slugTar(n, perDir)).pipe(child.stdin);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`tar exited ${code}: ${err}`));
      const [user, sys] = err.trim().split('\n').pop().split(' ').map(Number);
      resolve({ ms: Number(process.hrtime.bigint() - t0) / 1e6, user, sys });
    });
  });
}

/** CPU seconds of the process working in `dir` (the extractor's tar), sampled until stopped. */
function sampleTarCpu(dir) {
  let pid;
  let cpu = 0;
  const poll = setInterval(() => {
    try {
      pid ??= readdirSync('/proc').filter((p) => /^\d+$/.test(p)).find((p) => { try { return readlinkSync(`/proc/${p}/cwd`) === dir; } catch { return false; } });
      if (pid === undefined) return;
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      cpu = (Number(f[11]) + Number(f[12])) / TICK;
    } catch { /* exited */ }
  }, 100);
  return () => { clearInterval(poll); return cpu; };
}

/** The gzipped slug, made beforehand (empty files compress ~80x: 200,000 are ~1.2 MB), so
 * that making it costs nothing while the extraction is measured, as a download would. */
async function gzipped(n, perDir) {
  const chunks = [];
  for await (const c of Readable.from(slugTar(n, perDir)).pipe(createGzip())) chunks.push(c);
  return chunks;
}

async function agentExtract(dir, slug, opts) {
  const source = Readable.from(slug);
  const stop = sampleTarCpu(dir);
  const t0 = process.hrtime.bigint();
  let code = 'ok';
  try {
    await extractSlug({ source, stagingDir: dir, owner: OWNER, expectedSha256: undefined, log, ...opts });
  } catch (err) {
    code = err.code;
  }
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, cpu: stop(), code };
}

// The "dynos": two busy processes (one per CPU of this machine kind) in a cgroup with
// standard-1x's shares, counting loop iterations; each prints its count every 100 ms.
function cgroupDir(name) {
  return VERSION === 2 ? join('/sys/fs/cgroup', PARENT, name) : join('/sys/fs/cgroup/cpu', PARENT, name);
}
function startDynos() {
  const dir = cgroupDir('bench-dyno');
  if (VERSION === 2) {
    mkdirSync(join('/sys/fs/cgroup', PARENT), { recursive: true });
    writeFileSync(join('/sys/fs/cgroup', PARENT, 'cgroup.subtree_control'), '+cpu');
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, VERSION === 2 ? 'cpu.weight' : 'cpu.shares'), VERSION === 2 ? '39' : '1024');
  const counts = [];
  const procs = cpus().map((_, i) => {
    const p = spawn(process.execPath, ['-e', 'let n=0,t=Date.now();for(;;){n++;if((n&0xfffff)===0&&Date.now()-t>=100){process.stdout.write(n+"\\n");t=Date.now();}}'], { stdio: ['ignore', 'pipe', 'ignore'] });
    writeFileSync(join(dir, 'cgroup.procs'), String(p.pid));
    counts[i] = [];
    p.stdout.on('data', (b) => { for (const l of String(b).split('\n')) if (l) counts[i].push([Date.now(), Number(l)]); });
    return p;
  });
  /** Iterations per second of all dynos together between two instants. */
  const rate = (from, to) => counts.reduce((sum, c) => {
    const a = c.filter(([ts]) => ts >= from && ts <= to);
    return a.length < 2 ? sum : sum + ((a.at(-1)[1] - a[0][1]) * 1000) / (a.at(-1)[0] - a[0][0]);
  }, 0);
  return { rate, stop: async () => { for (const p of procs) p.kill('SIGKILL'); await new Promise((r) => setTimeout(r, 200)); rmdirSync(dir); } };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const list = (xs, f = fmt) => `[${xs.map(f).join(', ')}]`;
const trees = [];

mkdirSync(WORK, { recursive: true });
console.log(`slug-files: ${fmt(FILES)} empty files (contended: ${fmt(CONTENDED)}); ${ROUNDS} rounds, alternating order; ${cpus().length} CPUs, kernel ${release()}, cgroup v${VERSION}, ${WORK}`);

// 1. File creation by GNU tar alone, spread (the baseline) and in one directory.
const spread = [];
const flat = [];
for (let r = 0; r < ROUNDS; r++) {
  for (const layout of r % 2 ? ['flat', 'spread'] : ['spread', 'flat']) {
    const dir = freshDir(layout);
    trees.push([layout === 'flat' ? 'one directory' : '1,000 per directory', dir, FILES]);
    (layout === 'flat' ? flat : spread).push(await tarAlone(dir, FILES, layout === 'flat' ? 0 : 1000));
  }
}
const base = median(spread.map((x) => x.ms));
const cpu = (xs) => median(xs.map((x) => x.user + x.sys)).toFixed(1);
console.log(`baseline: GNU tar, 1,000 per directory (median ms)  ${fmt(base)}  ${list(spread.map((x) => x.ms))}  ${fmt(FILES / (base / 1000))} files/s, tar CPU ${cpu(spread)} s`);
const flatMs = median(flat.map((x) => x.ms));
console.log(`GNU tar, all in one directory (median ms)           ${fmt(flatMs)}  ${list(flat.map((x) => x.ms))}  ${(flatMs / base).toFixed(2)}x, ${fmt(FILES / (flatMs / 1000))} files/s, tar CPU ${cpu(flat)} s`);

// 2. The agent refusing a slug one entry over the cap, all in one directory (the worst
// layout the budgets allow), through the extraction cgroup; then its staging dir removed at
// once, as the store does.
let dir = freshDir('refused');
const refused = await agentExtract(dir, await gzipped(FILES + 1, 0), { limits: { ...DEFAULT_SLUG_LIMITS, maxEntries: FILES }, cgroup: { parent: PARENT } });
console.log(`agent refusing ${fmt(FILES + 1)} entries at a cap of ${fmt(FILES)} (ms)  ${fmt(refused.ms)}  ${(refused.ms / base).toFixed(2)}x  ${refused.code}, tar CPU ~${refused.cpu.toFixed(1)} s`);
const r0 = process.hrtime.bigint();
await rm(dir, { recursive: true, force: true });
const removedMs = Number(process.hrtime.bigint() - r0) / 1e6;
console.log(`removing what it wrote (ms)                    ${fmt(removedMs)}`);
console.log(`refusal cost at the cap: ${((refused.ms + removedMs) / 1000).toFixed(1)} s`);

// 3. Dynos at work while a slug extracts, with and without the extraction cgroup. Each
// extraction is compared with the dynos alone in the 4 s just before and after it, so a
// change in the rest of the host's load shows less. Tar's share: its CPU time over the
// extraction's wall time, in % of one CPU: what the weight decides under contention.
const contended = await gzipped(CONTENDED, 1000);
const dynos = startDynos();
await sleep(2000);
const aloneFor = async () => { const from = Date.now(); await sleep(4000); return dynos.rate(from, Date.now()); };
let before = await aloneFor();
const during = { cgroup: [], agent: [] };
for (let r = 0; r < ROUNDS; r++) {
  for (const where of r % 2 ? ['agent', 'cgroup'] : ['cgroup', 'agent']) {
    dir = freshDir(`contended-${where}`);
    trees.push([`contended (${where})`, dir, CONTENDED]);
    const from = Date.now();
    const x = await agentExtract(dir, contended, where === 'cgroup' ? { cgroup: { parent: PARENT } } : {});
    const rate = dynos.rate(from, Date.now());
    const after = await aloneFor();
    const ratio = rate / ((before + after) / 2);
    during[where].push({ ...x, ratio, share: (100 * x.cpu) / (x.ms / 1000) });
    before = after;
  }
}
await dynos.stop();
for (const [where, name] of [['cgroup', 'in the extraction cgroup'], ['agent', "in the agent's cgroup"]]) {
  const xs = during[where];
  console.log(`${fmt(CONTENDED)} files extracting ${name}, 2 busy dynos at 1024 shares:`);
  console.log(`  dynos' rate (median, x of alone)  ${median(xs.map((x) => x.ratio)).toFixed(2)}x  ${list(xs.map((x) => x.ratio), (v) => v.toFixed(2))}`);
  console.log(`  extraction (median ms)            ${fmt(median(xs.map((x) => x.ms)))}  ${list(xs.map((x) => x.ms))}; tar CPU ~${median(xs.map((x) => x.cpu)).toFixed(1)} s`);
  console.log(`  tar's share of a CPU (median %)   ${median(xs.map((x) => x.share)).toFixed(0)}  ${list(xs.map((x) => x.share), (v) => v.toFixed(0))}`);
}
try { rmdirSync(join('/sys/fs/cgroup', VERSION === 2 ? '' : 'cpu', PARENT)); } catch { /* reported below */ }
try { if (VERSION === 1) rmdirSync(join('/sys/fs/cgroup/blkio', PARENT)); } catch { /* reported below */ }

// The other removals last, each timed: each makes the writes after it slower.
for (const [name, d, n] of trees) {
  const t0 = process.hrtime.bigint();
  await rm(d, { recursive: true, force: true });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (n === FILES) console.log(`removing a tree of ${fmt(n)}, ${name} (ms)  ${fmt(ms)}  ${fmt(n / (ms / 1000))} files/s`);
}
const left = (VERSION === 2 ? [''] : ['cpu', 'blkio']).map((h) => join('/sys/fs/cgroup', h, PARENT)).filter((p) => existsSync(p));
if (left.length) console.log(`left behind: ${left.join(' ')}`);
