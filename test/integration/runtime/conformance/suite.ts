// The runtime conformance suite: the same dyno semantics, checked the same way, for every
// driver (runc, LXC, Docker), against the real runtime. Each conformance-<driver>.test.ts
// registers these cases with its driver. What is asserted is what an operator or an app would
// observe: output, exit codes, env, the file system, limits, privileges inside the dyno, the
// stop sequence, survival of an agent SIGKILL, and that nothing is left afterwards.
import t, { type Test } from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ContainerSpec, DynoHandle, RuntimeDriver, RuntimeName } from '../../../../agent/runtime/driver.js';
import { dynoArgs, dynoEnv } from '../../../../agent/dynos/entrypoint.js';
import { tailLog } from '../../../../agent/dynos/log-tail.js';
import { busyboxStack, cgroupChildren, eventually, mountsUnder, processesMentioning, removeCgroupParent, REPO, uniqueName } from '../../../helpers/host.js';
import { makeSlug } from '../../../helpers/slugs.js';

export interface ConformanceTarget {
  name: RuntimeName;
  make(cgroupParent: string): Promise<RuntimeDriver>;
  /** This runtime's containers for a dyno id that still exist (the leftover check). */
  containersOf(dynoId: string): string[];
}

const DYNO_UID = 64000;
const MB = 1024 * 1024;

/** A slug dir as the slug store leaves it: app/ and its files owned by the dyno user. */
function makeSlugDir(root: string): string {
  const slug = join(root, 'slug');
  const files: Record<string, string> = {
    'app/hello.txt': 'from the slug\n',
    'app/.profile.d/greet.sh': 'export GREETING="profile saw $CONFIG_VAR"\n',
    'app/bin/tick': '#!/bin/sh\ni=0\nwhile :; do i=$((i+1)); echo "tick $i"; sleep 0.2; done\n',
  };
  for (const [rel, body] of Object.entries(files)) {
    mkdirSync(join(slug, rel, '..'), { recursive: true });
    writeFileSync(join(slug, rel), body, { mode: rel.startsWith('app/bin/') ? 0o755 : 0o644 });
  }
  for (const p of ['app', 'app/hello.txt', 'app/.profile.d', 'app/.profile.d/greet.sh', 'app/bin', 'app/bin/tick']) chownSync(join(slug, p), DYNO_UID, DYNO_UID);
  return slug;
}

function treeHash(dir: string): string {
  const h = createHash('sha256');
  const walk = (rel: string) => {
    for (const e of readdirSync(join(dir, rel), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = join(rel, e.name);
      h.update(p);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) h.update(readFileSync(join(dir, p)));
    }
  };
  walk('');
  return h.digest('hex');
}

export function conformance(target: ConformanceTarget): void {
  const cgroupParent = `/${uniqueName('slipway-conf-')}`;
  const prefix = uniqueName(`c${target.name.slice(0, 2)}`);
  let driver: RuntimeDriver;
  let root: string;
  let slug: string;
  const handles: DynoHandle[] = [];

  t.before(async () => {
    driver = await target.make(cgroupParent);
    root = mkdtempSync(join(tmpdir(), `slipway-conf-${target.name}-`));
    slug = makeSlugDir(root);
  });
  // One teardown, in order: dynos (and their mounts) first, then the files under them.
  t.teardown(async () => {
    for (const h of handles) await driver.destroy(h).catch(() => undefined);
    removeCgroupParent(cgroupParent);
    if (root) rmSync(root, { recursive: true, force: true });
  });

  const spec = (name: string, command: string, o: { memoryMb?: number; pidsLimit?: number; env?: Record<string, string>; port?: number } = {}): ContainerSpec => {
    const id = `${prefix}-${name}`;
    const dynoSpec = { name: 'web.1', env: o.env ?? { CONFIG_VAR: 'cv' } };
    return {
      dynoId: id, dir: join(root, 'dynos', id), stackName: 'busybox', stackDir: busyboxStack(), slugDir: slug,
      args: dynoArgs(command, '/bin/sh'), env: dynoEnv(dynoSpec, o.port), cwd: '/app', user: { uid: DYNO_UID, gid: DYNO_UID }, hostname: id,
      limits: { memoryBytes: (o.memoryMb ?? 64) * MB, cpuShares: 512, pidsLimit: o.pidsLimit ?? 64, nofile: 1024 },
    };
  };
  const start = async (s: ContainerSpec) => {
    const h = await driver.start(s);
    handles.push(h);
    return h;
  };
  const output = async (h: DynoHandle) => (await tailLog(driver.log(h), 'web.1', 1500)).map((l) => l.replace(/^\S+ app\[web\.1\]: /, '')).join('\n');
  const assertGone = async (t: Test, h: DynoHandle) => {
    t.same(target.containersOf(h.dynoId), [], 'no container left');
    t.same(mountsUnder(h.dir), [], 'no mount left');
    t.notOk(existsSync(h.dir), 'no dyno dir left');
    t.same(processesMentioning(h.dir), [], 'no monitor or dyno process left');
    // Docker names a dyno's cgroup after its container id, runc and LXC after the dyno id.
    const cgroupName = h.cgroupPath?.split('/').pop() ?? h.dynoId;
    t.same(cgroupChildren(cgroupParent).filter((c) => c.includes(h.dynoId) || c.includes(cgroupName)), [], 'no cgroup left');
  };

  t.test(`${target.name}: output and exit codes`, async (t) => {
    const h = await start(spec('exit', 'echo to-stdout; echo to-stderr >&2; exit 3'));
    t.same(await driver.wait(h), { code: 3, signal: null, oomKilled: false }, 'the exit code is reported, no OOM');
    const log = readFileSync(driver.log(h).path, 'utf8');
    t.match(await output(h), /to-stdout[\s\S]*to-stderr|to-stderr[\s\S]*to-stdout/, 'both streams reach the log');
    t.match(log, target.name === 'docker' ? /"log":"to-stderr\\n","stream":"stderr"/ : /stderr F to-stderr/, 'stderr is kept apart from stdout');
    await driver.destroy(h);
    await assertGone(t, h);
  });

  t.test(`${target.name}: a start the runtime refuses fails with a stable code and leaves nothing`, async (t) => {
    // A 1-byte memory limit: every runtime (or the kernel under it) refuses it.
    const s = spec('refused', 'echo never', { memoryMb: 0 });
    s.limits.memoryBytes = 1;
    await t.rejects(driver.start(s), { code: /^RUNTIME_(FAILED|TIMEOUT)$/ });
    t.same(target.containersOf(s.dynoId), [], 'no container left');
    t.same(mountsUnder(s.dir), [], 'no mount left');
    t.notOk(existsSync(s.dir), 'no dyno dir left');
    t.same(processesMentioning(s.dir), [], 'no monitor left');
  });

  t.test(`${target.name}: env, .profile.d and the working directory`, async (t) => {
    const env = { CONFIG_VAR: 'cv', MULTILINE: "line one\nline 'two'", DOLLAR: '$HOME and `ticks`' };
    const h = await start(spec('env', 'pwd; echo "DYNO=$DYNO HOME=$HOME PORT=$PORT"; echo "$GREETING"; printf "%s|" "$MULTILINE"; echo; echo "$DOLLAR"; env | grep -c "^container=" || true', { env, port: 5000 }));
    t.equal((await driver.wait(h)).code, 0);
    const out = await output(h);
    t.match(out, /^\/app$/m, 'the command runs in /app');
    t.match(out, /DYNO=web\.\d+ HOME=\/app PORT=5000/, 'DYNO, HOME and PORT are set');
    t.match(out, /profile saw cv/, '.profile.d scripts ran and saw the config vars');
    t.match(out, /line one\nline 'two'\|/, 'a config var with a newline and quotes arrives intact');
    t.match(out, /\$HOME and `ticks`/, 'config vars are not expanded');
    t.match(out, /^0$/m, 'no runtime-specific variable leaks in');
    await driver.destroy(h);
  });

  t.test(`${target.name}: /app is writable, the slug is never written, a restart starts from the slug again`, async (t) => {
    const before = treeHash(slug);
    const s = spec('fs', 'cat /app/hello.txt; test -f /app/new.txt && echo STALE; echo written > /app/new.txt; cat /app/new.txt; echo x > /tmp/t && echo tmp-ok; touch /bin/evil 2>/dev/null || echo stack-unchanged');
    const h1 = await start(s);
    t.equal((await driver.wait(h1)).code, 0);
    const out1 = await output(h1);
    t.match(out1, /from the slug/, 'the slug is at /app');
    t.match(out1, /^written$/m, '/app is writable');
    t.match(out1, /tmp-ok/, 'the rest of the file system is writable too');
    await driver.destroy(h1);
    const h2 = await start(s);
    t.equal((await driver.wait(h2)).code, 0);
    t.notMatch(await output(h2), /STALE/, 'the next start does not see the last one\'s writes');
    await driver.destroy(h2);
    t.equal(treeHash(slug), before, 'the slug dir on the host is unchanged');
    t.notOk(existsSync(join(busyboxStack(), 'bin', 'evil')), 'the stack on the host is unchanged');
  });

  t.test(`${target.name}: memory limit: an OOM kill is reported as OOM, a kill -9 from outside is not`, async (t) => {
    const hog = await start(spec('oom', 'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo survived', { memoryMb: 32 }));
    const oom = await driver.wait(hog);
    t.equal(oom.oomKilled, true, 'the cgroup OOM counter says OOM');
    t.notMatch(await output(hog), /survived/);
    await driver.destroy(hog);
    const victim = await start(spec('kill9', 'sleep 1000', { memoryMb: 32 }));
    const pid = await eventually('the sleep process', async () => (await driver.stats(victim))?.pids ? findPid(victim, 'sleep') : undefined, 10_000);
    process.kill(pid, 'SIGKILL');
    const killed = await driver.wait(victim);
    t.equal(killed.oomKilled, false, 'a SIGKILL from outside is not an OOM kill');
    await driver.destroy(victim);
  });

  t.test(`${target.name}: the pids limit stops a fork bomb without hurting the host`, async (t) => {
    // The bomb runs in a child shell, which dies at its first failed fork (as ash does); the
    // dyno's own shell then reports and execs (no fork needed) so the dyno stays up to be inspected.
    const h = await start(spec('forks', "sh -c 'i=0; while [ $i -lt 200 ]; do sleep 60 & i=$((i+1)); done'; echo bomb-done; exec sleep 60", { pidsLimit: 32 }));
    await eventually('the bomb to finish forking', async () => /bomb-done/.test(await output(h)) || undefined, 20_000);
    const stats = await driver.stats(h);
    t.ok(stats && stats.pids <= 32 && stats.pids >= 20, `the dyno holds at most its 32 pids (has ${stats?.pids})`);
    t.match(await output(h), /can't fork|Resource temporarily unavailable|fork/i, 'the shell inside saw forks fail');
    t.equal(execFileSync('sh', ['-c', 'echo host-can-fork'], { encoding: 'utf8' }).trim(), 'host-can-fork', 'the host still forks');
    await driver.stop(h, 1_000);
    await driver.destroy(h);
    await assertGone(t, h);
  });

  t.test(`${target.name}: inside the dyno: not root, no new privileges, no capabilities, seccomp, no mount, mknod or raw sockets, masked /proc`, async (t) => {
    const script = [
      'echo "uid=$(id -u)"',
      'grep -E "^(NoNewPrivs|Seccomp|CapEff|CapBnd):" /proc/self/status',
      'mount -t tmpfs none /tmp 2>/dev/null && echo MOUNTED || echo mount-refused',
      'mknod /tmp/null c 1 3 2>/dev/null && echo MKNOD || echo mknod-refused',
      'ping -c 1 -W 1 127.0.0.1 >/dev/null 2>&1 && echo PING || echo raw-socket-refused',
      'unshare -U true 2>/dev/null && echo USERNS || echo userns-refused',
      'if [ -e /proc/kcore ]; then head -c 1 /proc/kcore 2>/dev/null | wc -c | sed "s/^/kcore-bytes=/"; else echo kcore-bytes=0; fi',
      'if [ -e /proc/sysrq-trigger ]; then (echo h > /proc/sysrq-trigger) 2>/dev/null && echo SYSRQ || echo sysrq-refused; else echo sysrq-refused; fi',
      'echo "keys-bytes=$(cat /proc/keys 2>/dev/null | wc -c)"',
      'grep -E " /proc/sys | /sys " /proc/self/mounts | awk \'{print "mount " $2 " " substr($4,1,2)}\'',
    ].join('; ');
    const h = await start(spec('priv', script));
    await driver.wait(h);
    const out = await output(h);
    t.match(out, /uid=64000/, 'runs as the dyno user, not root');
    t.match(out, /NoNewPrivs:\s+1/, 'no new privileges');
    t.match(out, /CapEff:\s+0000000000000000/, 'no effective capabilities');
    t.match(out, /Seccomp:\s+2/, 'a seccomp filter is loaded');
    t.match(out, /mount-refused/);
    t.match(out, /mknod-refused/);
    t.match(out, /raw-socket-refused/);
    t.match(out, /userns-refused/, 'no user namespaces (the seccomp filter refuses unshare)');
    t.match(out, /kcore-bytes=0/, '/proc/kcore gives nothing (absent on this kernel, masked where present)');
    t.match(out, /sysrq-refused/, '/proc/sysrq-trigger is unusable');
    t.match(out, /keys-bytes=0/, 'a masked /proc path (/proc/keys) reads empty');
    t.match(out, /mount \/proc\/sys ro/, '/proc/sys is read-only');
    t.match(out, /mount \/sys ro/, '/sys is read-only');
    await driver.destroy(h);
  });

  t.test(`${target.name}: stop sends SIGTERM to every process, then SIGKILL after the grace`, async (t) => {
    // Each app says when its handler is in place, as a real app finishes booting first.
    const polite = await start(spec('term', 'trap "echo got-term; exit 0" TERM; echo ready; sleep 1000 & wait'));
    await eventually('the polite dyno to be ready', async () => /ready/.test(await output(polite)) || undefined, 10_000);
    const a = await driver.stop(polite, 10_000);
    t.equal(a.forced, false, 'a dyno that exits on SIGTERM is not forced');
    t.same(a.exit, { code: 0, signal: null, oomKilled: false }, "the app's own exit status is reported");
    t.match(await output(polite), /got-term/, 'the app saw SIGTERM');
    await driver.destroy(polite);
    const stubborn = await start(spec('ignore', 'trap "" TERM; echo ready; sleep 1000'));
    await eventually('the stubborn dyno to be ready', async () => /ready/.test(await output(stubborn)) || undefined, 10_000);
    const began = Date.now();
    const b = await driver.stop(stubborn, 1_000);
    t.equal(b.forced, true, 'a dyno that ignores SIGTERM is killed after the grace (R12)');
    t.ok(Date.now() - began >= 1_000, 'the grace was waited for');
    t.equal(b.exit.oomKilled, false);
    await driver.destroy(stubborn);
    await assertGone(t, stubborn);
  });

  t.test(`${target.name}: the one-off CLI streams output and exits with the command's code`, async (t) => {
    const state = join(root, `state-cli`);
    mkdirSync(join(state, 'stacks'), { recursive: true });
    cpSync(busyboxStack(), join(state, 'stacks', 'busybox'), { recursive: true, verbatimSymlinks: true });
    const built = await makeSlug(root, { 'Procfile': 'web: true\n' });
    const file = join(root, 'cli-slug.tgz');
    writeFileSync(file, built.bytes);
    const r = await runCli(['dyno', 'run', '--runtime', target.name, '--slug', `file://${file}`, '--sha256', built.sha256, '--state-dir', state, '--cgroup-parent', cgroupParent, '--env', 'WHO=cli', '--json', '--', 'echo', 'hello $WHO from $DYNO; echo oops >&2; exit 4']);
    t.equal(r.code, 4, `exit code passed through (stderr: ${r.stderr.slice(-500)})`);
    t.match(r.stdout, /^hello cli from run\.\d+$/m, 'stdout streamed, with the one-off dyno name');
    t.match(r.stderr, /^oops$/m, 'stderr streamed to stderr');
    const last = JSON.parse(r.stdout.trim().split('\n').pop()!);
    t.match(last, { exitCode: 4, signal: null, oomKilled: false, durationMs: Number });
    t.same(readdirSync(join(state, 'dynos')), [], 'the one-off dyno is removed');
  });

  t.test(`${target.name}: an agent killed with SIGKILL leaves its dyno running; a new one recovers it and its output is still captured`, async (t) => {
    const state = join(root, 'state-kill');
    mkdirSync(join(state, 'stacks'), { recursive: true });
    cpSync(busyboxStack(), join(state, 'stacks', 'busybox'), { recursive: true, verbatimSymlinks: true });
    const built = await makeSlug(root, { 'bin/tick': '#!/bin/sh\ni=0\nwhile :; do i=$((i+1)); echo "tick $i"; sleep 0.2; done\n' });
    const file = join(root, 'kill-slug.tgz');
    writeFileSync(file, built.bytes);
    const agent = spawn(process.execPath, [join(REPO, 'dist/agent/main.js'), 'dyno', 'run', '--runtime', target.name, '--slug', `file://${file}`, '--state-dir', state, '--cgroup-parent', cgroupParent, '--', 'sh /app/bin/tick'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let seen = '';
    agent.stdout.on('data', (b: Buffer) => { seen += b.toString(); });
    t.teardown(() => { try { agent.kill('SIGKILL'); } catch { /* gone */ } });
    await eventually('ticks from the agent-run dyno', () => /tick 3/.test(seen) || undefined, 30_000);
    agent.kill('SIGKILL');
    await new Promise((r) => agent.once('exit', r));
    const [id] = readdirSync(join(state, 'dynos'));
    t.ok(id, 'the dyno dir survives the agent');
    const fresh = await target.make(cgroupParent);
    const recovered = await fresh.recover(join(state, 'dynos', id!));
    t.ok(recovered, 'the new agent finds the dyno');
    handles.push(recovered!.handle);
    t.equal(recovered!.running, true, 'the dyno kept running');
    const ticksNow = Math.max(...[...seen.matchAll(/tick (\d+)/g)].map((m) => Number(m[1])));
    await eventually('output written after the agent died', async () => {
      const lines = await tailLog(fresh.log(recovered!.handle), 'run', 1500);
      return lines.some((l) => Number(/tick (\d+)/.exec(l)?.[1] ?? 0) > ticksNow + 3) || undefined;
    }, 20_000);
    t.pass('output written after the agent died is in the log');
    const stopped = await fresh.stop(recovered!.handle, 2_000);
    t.equal(stopped.exit.oomKilled, false);
    await fresh.destroy(recovered!.handle);
    await assertGone(t, recovered!.handle);
  });
}

/** The pid of the dyno's process whose command is `name`, from the dyno's cgroup. */
async function findPid(h: DynoHandle, name: string): Promise<number | undefined> {
  const { cgroupPids } = await import('../../../../agent/host/cgroup-procs.js');
  const { detectCgroupVersion } = await import('../../../../agent/host/cgroups.js');
  for (const pid of await cgroupPids(h.cgroupPath!, detectCgroupVersion())) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === name) return pid;
    } catch { /* exited */ }
  }
  return undefined;
}

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(REPO, 'dist/agent/main.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}
