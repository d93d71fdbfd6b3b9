// The dyno seccomp filter in each real runtime: runc loads ociSeccomp() from config.json, LXC
// (lxc-execute) loads lxcSeccomp() from lxc.seccomp.profile, Docker loads dockerSeccomp() from
// --security-opt seccomp=FILE. In each, as the dyno user (uid 64000):
// - the same container without the filter first shows that this kernel lets an unprivileged
//   user create a user namespace (`unshare -U true`), so the refusal below is the filter's;
// - with the filter /proc/self/status says `Seccomp: 2`, `unshare -U true` fails, and
//   ordinary commands still run.
// Everything made here (containers, the imported image, bundles, cgroups, temp dirs) is removed
// in t.teardown, and again checked gone at the end of each test.
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, rmdir, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { execBounded } from '../../../../agent/lib/exec.js';
import { cgroupDirs, detectCgroupVersion } from '../../../../agent/host/cgroups.js';
import { DYNO_CAPABILITIES } from '../../../../agent/runtime/hardening.js';
import { dockerSeccomp, lxcSeccomp, ociSeccomp } from '../../../../agent/runtime/seccomp/profile.js';
import { busyboxStack, runcContainers, tempDir, uniqueName } from '../../../helpers/host.js';

/** runc and lxc-execute run the probe in ~50 ms here, `docker run` in ~300 ms: a minute only
 * trips on a wedged runtime, and then fails the test instead of hanging it. */
const RUN_TIMEOUT_MS = 60_000;
/** Importing the ~2 MB busybox rootfs takes about a second; cleanup calls are faster still. */
const DOCKER_TIMEOUT_MS = 60_000;
const CLEANUP_TIMEOUT_MS = 30_000;

const DYNO_UID = 64000;
const PROBE = [
  'id -u',
  'grep Seccomp: /proc/self/status',
  'if unshare -U true; then echo userns-allowed; else echo userns-refused; fi',
  "sh -c 'echo ok; ls /'",
].join('; ');

const stack = busyboxStack();
const cgroupVersion = detectCgroupVersion();

function onPath(bin: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((d) => {
    try { accessSync(join(d, bin), constants.X_OK); return true; } catch { return false; }
  });
}

function missing(bin: string): string | false {
  return onPath(bin) ? false : `${bin} is not installed`;
}

function dockerMissing(): string | false {
  if (!onPath('docker')) return 'docker is not installed';
  try {
    execFileSync('docker', ['info', '--format', '{{.ServerVersion}}'], { timeout: 20_000, stdio: 'ignore' });
    return false;
  } catch {
    return 'the Docker engine is not answering (start dockerd)';
  }
}

/** Without the filter: the kernel would let the dyno user make a user namespace. */
function expectUnfiltered(t: Test, out: string): void {
  t.match(out, /^Seccomp:\s+0$/m, 'no filter: Seccomp 0');
  t.match(out, /^userns-allowed$/m, 'without the filter the dyno user CAN create a user namespace on this kernel');
}

function expectFiltered(t: Test, out: string): void {
  t.match(out, new RegExp(`^${DYNO_UID}$`, 'm'), 'runs as the dyno user');
  t.match(out, /^Seccomp:\s+2$/m, 'a seccomp filter is loaded (mode 2)');
  t.match(out, /^userns-refused$/m, 'unshare -U is refused');
  t.notMatch(out, /userns-allowed/);
  t.match(out, /^ok$/m, 'sh -c runs');
  t.match(out, /^bin$/m, 'ls / lists the rootfs');
}

/** Kills what is left in a cgroup tree and removes it, deepest first, in every hierarchy. */
async function removeCgroupTree(parent: string): Promise<void> {
  const remove = async (dir: string): Promise<void> => {
    if (!existsSync(dir)) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) await remove(join(dir, e.name));
    const procs = readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
    for (const pid of procs) {
      try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone */ }
    }
    // A killed process leaves its cgroup a moment later; a few tries cover that.
    for (let i = 0; i < 50 && existsSync(dir); i++) {
      await rmdir(dir).catch(() => new Promise((r) => setTimeout(r, 20)));
    }
  };
  for (const dir of cgroupDirs(parent, cgroupVersion)) await remove(dir);
}

function cgroupLeft(parent: string): string[] {
  return cgroupDirs(parent, cgroupVersion).filter((d) => existsSync(d));
}

t.test('runc runs the OCI rendering', { skip: missing('runc') }, async (t) => {
  const dir = await tempDir(t);
  const parent = uniqueName('slipway-test-seccomp-');
  const ids: string[] = [];
  const cleanup = async () => {
    for (const id of ids) await execBounded('runc', ['delete', '--force', id], { timeoutMs: CLEANUP_TIMEOUT_MS, allowFailure: true });
    await removeCgroupTree(parent);
  };
  t.teardown(cleanup);

  const run = async (name: string, seccomp?: Record<string, unknown>) => {
    const id = uniqueName(`slipway-seccomp-${name}-`);
    ids.push(id);
    const bundle = join(dir, name);
    await mkdir(bundle);
    await writeFile(join(bundle, 'config.json'), JSON.stringify({
      ociVersion: '1.0.2',
      process: {
        terminal: false, user: { uid: DYNO_UID, gid: DYNO_UID }, args: ['/bin/sh', '-c', PROBE], env: ['PATH=/bin:/usr/bin'], cwd: '/',
        noNewPrivileges: true,
        capabilities: { bounding: [...DYNO_CAPABILITIES], effective: [...DYNO_CAPABILITIES], permitted: [...DYNO_CAPABILITIES], inheritable: [], ambient: [] },
      },
      // The shared busybox stack, read-only: runc only mounts over it.
      root: { path: stack, readonly: true },
      hostname: name,
      mounts: [
        { destination: '/proc', type: 'proc', source: 'proc' },
        { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'mode=755', 'size=65536k'] },
      ],
      linux: {
        cgroupsPath: `/${parent}/${id}`,
        namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
        ...(seccomp ? { seccomp } : {}),
      },
    }));
    return execBounded('runc', ['run', '--bundle', bundle, id], { timeoutMs: RUN_TIMEOUT_MS, allowFailure: true });
  };

  const base = await run('base');
  t.equal(base.code, 0, `unfiltered run: ${base.stderr}`);
  expectUnfiltered(t, base.stdout);

  const filtered = await run('filtered', ociSeccomp());
  t.equal(filtered.code, 0, `filtered run: ${filtered.stderr}`);
  expectFiltered(t, filtered.stdout);

  await cleanup();
  const listed = runcContainers('');
  t.same(ids.filter((id) => listed.includes(id)), [], 'no runc container left');
  t.same(cgroupLeft(parent), [], 'no cgroup left');
});

t.test('lxc-execute runs the LXC rendering', { skip: missing('lxc-execute') }, async (t) => {
  const dir = await tempDir(t);
  const parent = uniqueName('slipway-test-seccomp-');
  t.teardown(() => removeCgroupTree(parent));
  // LXC writes into its rootfs (lxc-execute's init), so it gets a copy of the stack.
  const rootfs = join(dir, 'rootfs');
  await execBounded('cp', ['-a', stack, rootfs], { timeoutMs: CLEANUP_TIMEOUT_MS });
  const lxcPath = join(dir, 'lxc');
  await mkdir(lxcPath);
  const policy = join(dir, 'seccomp.policy');
  await writeFile(policy, lxcSeccomp());

  const run = async (name: string, withFilter: boolean) => {
    const ct = uniqueName(`slipway-seccomp-${name}-`);
    const config = join(dir, `${name}.conf`);
    await writeFile(config, [
      `lxc.uts.name = ${name}`,
      `lxc.rootfs.path = dir:${rootfs}`,
      'lxc.net.0.type = none',
      `lxc.init.uid = ${DYNO_UID}`,
      `lxc.init.gid = ${DYNO_UID}`,
      'lxc.no_new_privs = 1',
      'lxc.apparmor.profile = unconfined',
      'lxc.mount.auto = proc:mixed sys:ro',
      'lxc.autodev = 1',
      ...(withFilter ? [`lxc.seccomp.profile = ${policy}`] : []),
      `lxc.cgroup.dir.container = ${parent}/${ct}`,
      `lxc.cgroup.dir.monitor = ${parent}/${ct}.monitor`,
      `lxc.log.file = ${join(dir, `${name}.log`)}`,
      'lxc.log.level = WARN',
    ].join('\n') + '\n');
    return execBounded('lxc-execute', ['-n', ct, '-P', lxcPath, '-f', config, '--', '/bin/sh', '-c', PROBE], { timeoutMs: RUN_TIMEOUT_MS, allowFailure: true });
  };

  const base = await run('base', false);
  t.equal(base.code, 0, `unfiltered run: ${base.stderr}`);
  expectUnfiltered(t, base.stdout);

  const filtered = await run('filtered', true);
  t.equal(filtered.code, 0, `filtered run: ${filtered.stderr}`);
  expectFiltered(t, filtered.stdout);
  t.notMatch(readFileSync(join(dir, 'filtered.log'), 'utf8'), /ERROR/, 'LXC logged no error loading the policy');

  await removeCgroupTree(parent);
  t.same(cgroupLeft(parent), [], 'no cgroup left');
});

t.test('docker runs the Docker rendering', { skip: dockerMissing() }, async (t) => {
  const dir = await tempDir(t);
  const image = `${uniqueName('slipway-test-seccomp-')}:busybox`;
  const containers: string[] = [];
  const docker = (args: string[], timeoutMs = DOCKER_TIMEOUT_MS) => execBounded('docker', args, { timeoutMs, allowFailure: true });
  const cleanup = async () => {
    if (containers.length) await docker(['rm', '--force', ...containers], CLEANUP_TIMEOUT_MS);
    await docker(['rmi', '--force', image], CLEANUP_TIMEOUT_MS);
  };
  t.teardown(cleanup);

  const imported = await execBounded('sh', ['-c', `tar -C '${stack}' -c . | docker import - '${image}'`], { timeoutMs: DOCKER_TIMEOUT_MS, allowFailure: true });
  t.equal(imported.code, 0, `docker import: ${imported.stderr}`);
  const profile = join(dir, 'seccomp.json');
  await writeFile(profile, dockerSeccomp());

  const run = async (name: string, seccompOpt: string) => {
    const container = uniqueName(`slipway-seccomp-${name}-`);
    containers.push(container);
    return docker([
      'run', '--name', container, '--user', `${DYNO_UID}:${DYNO_UID}`, '--network', 'none',
      '--cap-drop', 'ALL', ...DYNO_CAPABILITIES.flatMap((c) => ['--cap-add', c.replace(/^CAP_/, '')]),
      '--security-opt', 'no-new-privileges', '--security-opt', `seccomp=${seccompOpt}`,
      image, '/bin/sh', '-c', PROBE,
    ], RUN_TIMEOUT_MS);
  };

  // Docker's own default profile also refuses unshare, so the baseline runs unconfined.
  const base = await run('base', 'unconfined');
  t.equal(base.code, 0, `unfiltered run: ${base.stderr}`);
  expectUnfiltered(t, base.stdout);

  const filtered = await run('filtered', profile);
  t.equal(filtered.code, 0, `filtered run: ${filtered.stderr}`);
  expectFiltered(t, filtered.stdout);
  const opts = JSON.parse((await docker(['inspect', '--format', '{{json .HostConfig.SecurityOpt}}', containers[1]!])).stdout) as string[];
  const seccompOpt = opts.find((o) => o.startsWith('seccomp='));
  t.same(seccompOpt && JSON.parse(seccompOpt.slice('seccomp='.length)), JSON.parse(dockerSeccomp()), 'the engine holds our profile, not its default');

  await cleanup();
  for (const c of containers) t.not((await docker(['inspect', c])).code, 0, `container ${c} removed`);
  t.not((await docker(['image', 'inspect', image])).code, 0, 'imported image removed');
});
