// Driver of scripts/bench/slug.sh; see there. Plain JS over dist/ so it measures the built
// agent exactly as it runs.
import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, copyFileSync, lstatSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, dirname, resolve } from 'node:path';
import { SlugStore } from '../../dist/agent/slugs/store.js';
import { createRootLogger } from '../../dist/shared/log.js';

const ROOT = resolve(import.meta.dirname, '../..');
const ROUNDS = Number(process.argv[2] ?? 5);
const WORK = process.env.BENCH_DIR ?? '/var/tmp/slipway-bench';
const TARGET_FILES = 10_000;
const MB = 1024 * 1024;

function median(xs) { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; }
function pct(xs, p) { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(s.length * p))]; }

// 1. The slug: app/bin/node and files of this repo's node_modules up to ~10,000 files.
function buildSlug() {
  const tgz = join(WORK, 'www', 'slug.tgz');
  if (existsSync(tgz)) return tgz;
  const src = join(WORK, 'src');
  rmSync(src, { recursive: true, force: true });
  mkdirSync(join(src, 'app', 'bin'), { recursive: true });
  copyFileSync(process.execPath, join(src, 'app', 'bin', 'node'));
  let files = 1;
  const walk = (rel) => {
    for (const e of readdirSync(join(ROOT, rel), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (files >= TARGET_FILES) return;
      const r = join(rel, e.name);
      if (e.isDirectory()) walk(r);
      else if (e.isFile()) {
        mkdirSync(join(src, 'app', dirname(r)), { recursive: true });
        copyFileSync(join(ROOT, r), join(src, 'app', r));
        files++;
      }
    }
  };
  walk('node_modules');
  mkdirSync(join(WORK, 'www'), { recursive: true });
  execFileSync('tar', ['-czf', tgz, '-C', src, '--owner=0', '--group=0', './app']);
  rmSync(src, { recursive: true, force: true });
  return tgz;
}

/** Samples a child's peak RSS (VmHWM) every 10 ms; stop() returns the highest seen. */
function peakRss(child) {
  let hwm = 0;
  const poll = setInterval(() => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      if (m) hwm = Math.max(hwm, Number(m[1]) * 1024);
    } catch { /* exited */ }
  }, 10);
  return { stop: () => { clearInterval(poll); return hwm; } };
}

function timed(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    const rss = peakRss(child);
    let out = '', err = '';
    child.stdout.on('data', (b) => { out += b; });
    child.stderr.on('data', (b) => { err += b; });
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (code !== 0) reject(new Error(`${cmd} exited ${code}: ${err}`));
      else resolve({ ms, hwm: rss.stop(), out });
    });
  });
}

/** The agent's fetch in a warm process: time from "go" to the result; peak RSS sampled. */
function agentFetch(url, sha, dir) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'scripts/bench/fetch-once.mjs'), url, sha, dir], { stdio: ['pipe', 'pipe', 'inherit'] });
    const rss = peakRss(child);
    let out = '', t0;
    child.stdout.on('data', (b) => {
      out += b;
      if (t0 === undefined && out.includes('ready\n')) { t0 = process.hrtime.bigint(); child.stdin.write('go\n'); }
    });
    child.on('close', (code) => {
      const hwm = rss.stop();
      const wall = Number(process.hrtime.bigint() - t0) / 1e6;
      const last = out.trim().split('\n').pop();
      if (code !== 0) reject(new Error(`fetch-once exited ${code}`));
      else resolve({ hwm, ...JSON.parse(last), wall });
    });
  });
}

async function main() {
  mkdirSync(WORK, { recursive: true });
  const tgz = buildSlug();
  const bytes = readFileSync(tgz);
  const sha = createHash('sha256').update(bytes).digest('hex');
  const port = 20000 + Math.floor(Math.random() * 9000);
  const httpd = spawn('busybox', ['httpd', '-f', '-p', `127.0.0.1:${port}`, '-h', join(WORK, 'www')], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 300));
  const url = `http://127.0.0.1:${port}/slug.tgz`;
  try {
    const base = [], ours = [], rss = [], cli = [];
    let files = 0, unpacked = 0;
    // Every run writes into a fresh directory and nothing is deleted until all runs are done:
    // on this machine's ext4 (mounted with online `discard`), removing a 150 MB tree makes the
    // writes of the next several seconds 5-7x slower, which swamped the comparison (a round's
    // baseline ranged 1.5-10 s when each round removed the previous one's trees).
    // Each timed run also starts on a quiet disk: the dirty pages of the previous run are
    // written back first, outside the timing, so one run's writeback is not billed to the next.
    const quiet = () => execFileSync('sync');
    const runs = join(WORK, 'runs');
    rmSync(runs, { recursive: true, force: true });
    mkdirSync(runs);
    for (let i = 0; i < ROUNDS; i++) {
      const a = join(runs, `curl-${i}`), b = join(runs, `agent-${i}`);
      mkdirSync(a);
      const runBase = async () => base.push((await timed('sh', ['-c', `curl -s ${url} | tar -xz -C ${a}`])).ms);
      const runOurs = async () => {
        const r = await agentFetch(url, sha, join(b, 'slugs'));
        ours.push(r.wall);
        rss.push(r.hwm);
        files = r.files; unpacked = r.bytes;
      };
      if (i % 2 === 0) { quiet(); await runBase(); quiet(); await runOurs(); } else { quiet(); await runOurs(); quiet(); await runBase(); }
      // The operator's CLI, node start included (reported, not the target).
      const c = join(runs, `cli-${i}`);
      quiet();
      cli.push((await timed(process.execPath, [join(ROOT, 'dist/agent/main.js'), 'slug', 'fetch', url, '--sha256', sha, '--state-dir', c])).ms);
    }

    // Cache hit, in-process as the agent pays it.
    const store = new SlugStore({ dir: join(runs, `agent-${ROUNDS - 1}`, 'slugs'), owner: { uid: 64000, gid: 64000 }, log: createRootLogger({ level: 'silent' }) });
    await store.init();
    const hits = [];
    for (let i = 0; i < 200; i++) {
      const t0 = process.hrtime.bigint();
      const e = await store.ensure({ url, sha256: sha });
      hits.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (!e.cached) throw new Error('expected a cache hit');
    }

    // 20 concurrent requests for one new slug, served by a counting server.
    let requests = 0;
    const srv = createServer((req, res) => { requests++; res.writeHead(200, { 'content-length': bytes.length }); createReadStream(tgz).pipe(res); });
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    const concDir = join(runs, 'concurrent');
    const cstore = new SlugStore({ dir: concDir, owner: { uid: 64000, gid: 64000 }, log: createRootLogger({ level: 'silent' }) });
    await cstore.init();
    const t0 = process.hrtime.bigint();
    await Promise.all(Array.from({ length: 20 }, () => cstore.ensure({ url: `http://127.0.0.1:${srv.address().port}/slug.tgz`, sha256: sha })));
    const concMs = Number(process.hrtime.bigint() - t0) / 1e6;
    srv.close();

    const ratio = median(ours) / median(base);
    const line = (k, v) => console.log(`${k.padEnd(44)} ${v}`);
    console.log(`slug: ${files} files, ${(unpacked / MB).toFixed(1)} MB unpacked, ${(bytes.length / MB).toFixed(1)} MB compressed; ${ROUNDS} rounds, alternating order`);
    line('baseline curl -s URL | tar -xz (median ms)', median(base).toFixed(0) + `   [${base.map((x) => x.toFixed(0)).join(', ')}]`);
    line('agent fetch+verify+extract (median ms)', median(ours).toFixed(0) + `   [${ours.map((x) => x.toFixed(0)).join(', ')}]`);
    line('ratio (target <= 1.15)', `${ratio.toFixed(2)}x  ${ratio <= 1.15 ? 'MET' : 'MISSED'}`);
    line('slug fetch CLI incl. node start (median ms)', median(cli).toFixed(0) + `   (${(median(cli) / median(base)).toFixed(2)}x, informative)`);
    line('peak RSS of the fetching process (max, MB)', `${(Math.max(...rss) / MB).toFixed(0)}  (target < 150: ${Math.max(...rss) < 150 * MB ? 'MET' : 'MISSED'})`);
    line('cache hit, in-process (median / p99 ms)', `${median(hits).toFixed(3)} / ${pct(hits, 0.99).toFixed(3)}  (target < 5: ${pct(hits, 0.99) < 5 ? 'MET' : 'MISSED'})`);
    line('20 concurrent ensure() of a new slug', `${requests} download(s), ${concMs.toFixed(0)} ms  (target 1: ${requests === 1 ? 'MET' : 'MISSED'})`);
  } finally {
    httpd.kill();
    rmSync(join(WORK, 'runs'), { recursive: true, force: true });
  }
}

main().catch((err) => { console.error(err); process.exit(1); });
