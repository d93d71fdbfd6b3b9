// `slipway-agent dyno run` as an operator runs it (the built dist/agent/main.js, needs
// `npx tsc -p tsconfig.json` first), under real runc with the busybox stack: the words after
// `--` reach the dyno as they would reach `docker run IMAGE WORD...`, a single word is a command
// string for the shell, and the one-off's container has the agent dynos' memory hard limit
// (read from the kernel's cgroup while it runs; Ctrl-C then stops it Heroku style).
// Each run removes its dyno; the test's cgroup parent and state dir go at teardown, and every
// test checks that no container, mount or process of its state dir is left.
import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { detectCgroupVersion } from '../../../../agent/host/cgroups.js';
import { busyboxStack, cgroupChildren, eventually, mountsUnder, processesMentioning, removeCgroupParent, REPO, runcContainers, uniqueName } from '../../../helpers/host.js';
import { makeSlug } from '../../../helpers/slugs.js';
import { destroyTestNetwork, dynoNetworksLeft, testAgentConfig } from '../../../helpers/network.js';

const cgroupParent = `/${uniqueName('slipway-dynorun-')}`;
const root = mkdtempSync(join(tmpdir(), 'slipway-dynorun-'));
const state = join(root, 'state');
mkdirSync(join(state, 'stacks'), { recursive: true });
cpSync(busyboxStack(), join(state, 'stacks', 'busybox'), { recursive: true, verbatimSymlinks: true });
const children = new Set<ReturnType<typeof spawn>>();
// One-offs get their own network namespace on a bridge and table of this test's own.
const agentConfig = await testAgentConfig(root);

t.teardown(async () => {
  for (const c of children) c.kill('SIGKILL');
  await destroyTestNetwork(agentConfig.network);
  removeCgroupParent(cgroupParent);
  rmSync(root, { recursive: true, force: true });
});

let slug: { file: string; sha256: string } | undefined;
async function theSlug(): Promise<{ file: string; sha256: string }> {
  if (slug) return slug;
  const built = await makeSlug(root, { 'Procfile': 'web: true\n' });
  const file = join(root, 'slug.tgz');
  writeFileSync(file, built.bytes);
  slug = { file, sha256: built.sha256 };
  return slug;
}

interface Run { child: ChildProcess; stdout: () => string; done: Promise<{ code: number | null; stdout: string; stderr: string }> }

async function startRun(words: string[], extra: string[] = []): Promise<Run> {
  const { file, sha256 } = await theSlug();
  const args = [join(REPO, 'dist/agent/main.js'), 'dyno', 'run', '--config', agentConfig.file, '--runtime', 'runc', '--slug', `file://${file}`, '--sha256', sha256, '--state-dir', state, '--cgroup-parent', cgroupParent, ...extra, '--', ...words];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
  child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.on('exit', (code) => {
    clearTimeout(timer);
    children.delete(child);
    resolve({ code, stdout, stderr });
  }));
  return { child, stdout: () => stdout, done };
}

const dynoRun = async (words: string[], extra: string[] = []) => (await startRun(words, extra)).done;

/** The memory hard limit of the one running dyno under the test's cgroup parent, as the kernel has it. */
function memoryLimit(): number {
  const v2 = detectCgroupVersion() === 2;
  const dir = cgroupChildren(cgroupParent).find((d) => v2 || d.startsWith('/sys/fs/cgroup/memory/'));
  if (!dir) throw new Error(`no dyno cgroup under ${cgroupParent}`);
  return Number(readFileSync(join(dir, v2 ? 'memory.max' : 'memory.limit_in_bytes'), 'utf8').trim());
}

function nothingLeft(t: Test): void {
  t.same(readdirSync(join(state, 'dynos')), [], 'the one-off dyno is removed');
  t.same(dynoNetworksLeft(agentConfig.network.bridge), [], 'and its network namespace and veth');
  t.same(runcContainers('slipway-run-'), [], 'no container left');
  t.same(mountsUnder(state), [], 'no mount left');
  t.same(processesMentioning(join(state, 'dynos')), [], 'no monitor or dyno process left');
  t.same(cgroupChildren(cgroupParent), [], 'no cgroup left');
}

t.test("several words are a command and its arguments: -- sh -c 'x=a; echo ${#x}' prints 1", async (t) => {
  const r = await dynoRun(['sh', '-c', 'x=a; echo ${#x}']);
  t.equal(r.code, 0, `exit 0 (stderr: ${r.stderr.slice(-500)})`);
  t.equal(r.stdout, '1\n', 'sh got `x=a; echo ${#x}` as one argument');
  nothingLeft(t);
});

t.test("-- sh -c 'echo $HOME' prints /app, as docker run IMAGE sh -c 'echo $HOME' would", async (t) => {
  const r = await dynoRun(['sh', '-c', 'echo $HOME']);
  t.equal(r.code, 0, `exit 0 (stderr: ${r.stderr.slice(-500)})`);
  t.equal(r.stdout, '/app\n');
  nothingLeft(t);
});

t.test("a one-off dyno has its own network namespace: an address from the host's dyno subnet, the bridge as its gateway, the agent's resolv.conf", async (t) => {
  const r = await dynoRun(['ip -4 -o addr show dev eth0; ip route; cat /etc/resolv.conf; ls /sys/class/net']);
  t.equal(r.code, 0, `exit 0 (stderr: ${r.stderr.slice(-500)})`);
  const prefix = agentConfig.network.subnet.split('.').slice(0, 3).join('.');
  t.match(r.stdout, new RegExp(`inet ${prefix.replace(/\./g, '\\.')}\\.\\d+/24`), 'eth0 has an address of the dyno subnet');
  t.match(r.stdout, new RegExp(`default via ${prefix.replace(/\./g, '\\.')}\\.1 dev eth0`), 'the default route is the bridge');
  t.match(r.stdout, /Written by slipway-agent/, "/etc/resolv.conf is the agent's");
  t.notMatch(r.stdout, /docker0|swt[0-9a-f]{6}\b(?!-)/, "no host interface is visible: the namespace is the dyno's own");
  nothingLeft(t);
});

t.test('with requireSignedSlugs a one-off needs --signature: SLUG_UNSIGNED without one, and nothing runs', async (t) => {
  const publicKey = readFileSync(join(REPO, 'test/unit/agent/slugs/fixtures/minisign/a.pub'), 'utf8').trim().split('\n')[1]!;
  const signed = await testAgentConfig(root, { requireSignedSlugs: true, slugPublicKeys: [publicKey] });
  t.teardown(() => destroyTestNetwork(signed.network));
  const { file, sha256 } = await theSlug();
  const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [join(REPO, 'dist/agent/main.js'), 'dyno', 'run', '--config', signed.file, '--runtime', 'runc', '--slug', `file://${file}`, '--sha256', sha256, '--state-dir', state, '--cgroup-parent', cgroupParent, '--', 'echo ran'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    child.on('close', (code) => resolve({ code, stderr }));
  });
  t.equal(r.code, 1);
  t.match(r.stderr, /^SLUG_UNSIGNED: /m, 'refused with its code');
  t.same(runcContainers('slipway-run-'), [], 'nothing ran');
});

t.test('a single word is a command string for the shell, as heroku run "cmd"', async (t) => {
  const r = await dynoRun(['echo "$HOME" from $DYNO; exit 5']);
  t.equal(r.code, 5, `its exit code passed through (stderr: ${r.stderr.slice(-500)})`);
  t.match(r.stdout, /^\/app from run\.\d+\n$/);
  nothingLeft(t);
});

t.test("the one-off's memory hard limit is r15Multiple x quota, as an agent dyno's; Ctrl-C stops it", async (t) => {
  const config = join(root, 'agent.json');
  // The test's own network too: a second --config replaces the first one.
  writeFileSync(config, JSON.stringify({ ...JSON.parse(readFileSync(agentConfig.file, 'utf8')) as object, memory: { r15Multiple: 3 } }));
  for (const [extra, multiple] of [[[], 2], [['--config', config], 3]] as const) {
    const run = await startRun(['echo ready; exec sleep 1000'], ['--size', 'standard-1x', ...extra]);
    await eventually('the one-off to run', () => run.stdout().includes('ready') || undefined, 30_000);
    t.equal(memoryLimit(), multiple * 512 * 1024 * 1024, `a 512 MB one-off may burst to ${multiple}x (${extra.length ? 'memory.r15Multiple of the config file' : 'the default'})`);
    run.child.kill('SIGINT');
    const r = await run.done;
    t.equal(r.code, 143, `Ctrl-C: SIGTERM, the command dies of it (stderr: ${r.stderr.slice(-300)})`);
    nothingLeft(t);
  }
});
