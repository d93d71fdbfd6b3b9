import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildOciConfig } from '../../../../../agent/runtime/runc/oci-config.js';
import { validateOciConfig } from '../../../../../agent/runtime/runc/oci-schema.js';
import type { ContainerSpec } from '../../../../../agent/runtime/driver.js';
import { SlipwayError } from '../../../../../shared/errors.js';

// A web dyno of the 512 MB size with a CPU cap, as the runc driver would start it.
const spec: ContainerSpec = {
  dynoId: 'app1-web-1-abc', dir: '/x', stackName: 'heroku-24', stackDir: '/s', slugDir: '/g',
  args: ['/bin/sh', '-c', 'exec bin/web'], env: ['PORT=5000', 'DYNO=web.1', 'HOME=/app'], cwd: '/app',
  user: { uid: 64000, gid: 64000 }, hostname: 'app1-web-1-abc',
  limits: { memoryBytes: 512 * 1048576, cpuShares: 1024, cpuQuotaPercent: 50, pidsLimit: 256, nofile: 10000 },
};

/** A fresh copy of the dyno's config, so each case breaks exactly one thing. */
function dynoConfig(): any {
  return structuredClone(buildOciConfig(spec, { cgroupsPath: '/slipway/slipway-app1-web-1-abc' }));
}

/** The error validateOciConfig throws for `config`; fails the test if it validates. */
function refusal(t: Test, config: unknown): SlipwayError | undefined {
  try {
    validateOciConfig(config);
  } catch (err) {
    t.type(err, SlipwayError);
    return err as SlipwayError;
  }
  t.fail('the config validated');
  return undefined;
}

t.test('the config built for a typical dyno validates', async (t) => {
  const config = dynoConfig();
  t.equal(config.ociVersion, '1.0.2', 'the version the vendored schema describes');
  t.doesNotThrow(() => validateOciConfig(config));
  t.doesNotThrow(() => validateOciConfig(dynoConfig()), 'and again, with the compiled validator reused');
});

t.test('a broken config is refused, naming the path that is wrong', async (t) => {
  const cases: [string, (c: any) => void, RegExp][] = [
    ['no ociVersion', (c) => delete c.ociVersion, /: ociVersion is required$/],
    ['memory limit as a string', (c) => (c.linux.resources.memory.limit = '512m'), /: linux\.resources\.memory\.limit must be integer$/],
    ['an unknown namespace type', (c) => c.linux.namespaces.push({ type: 'netns' }), /: linux\.namespaces\[4\]\.type must be one of "mount", "pid", "network", "uts", "ipc", "user", "cgroup"$/],
    ['a mount without destination', (c) => delete c.mounts[1].destination, /: mounts\[1\]\.destination is required$/],
    // runtime-spec before 1.0.0-rc5 had one capability list; since then it is an object of sets.
    ['capabilities as a bare list', (c) => (c.process.capabilities = ['CAP_KILL']), /: process\.capabilities must be object$/],
    ['a capability set that is not a list', (c) => (c.process.capabilities.bounding = 'CAP_KILL'), /: process\.capabilities\.bounding must be array$/],
    ['a pids section without its limit', (c) => (c.linux.resources.pids = {}), /: linux\.resources\.pids\.limit is required$/],
  ];
  for (const [name, breakIt, named] of cases) {
    const config = dynoConfig();
    breakIt(config);
    const err = refusal(t, config);
    t.equal(err?.code, 'OCI_CONFIG_INVALID', name);
    t.equal(err?.retryable, false, `${name}: a slipway bug, not worth retrying`);
    t.match(err?.message, named, name);
  }
});

t.test('several faults: the first three are named, the rest counted', async (t) => {
  const config = dynoConfig();
  delete config.ociVersion;
  delete config.mounts[0].destination;
  config.linux.resources.memory.swap = -1.5;
  config.linux.namespaces[0].type = 'time';
  config.process.rlimits[0].type = 'NOFILE';
  const message = refusal(t, config)?.message ?? '';
  t.match(message, /^OCI config does not match the runtime-spec v1\.0\.2 schema: /);
  t.match(message, /ociVersion is required/);
  t.match(message, /mounts\[0\]\.destination is required/);
  t.match(message, /\(and 2 more\)$/);
  t.equal(message.split('; ').length, 3);
});

t.test('the seccomp section is held to the v1.0.2 enums', async (t) => {
  // No `flags`: v1.0.2 defines them, but runc 1.1.5 refuses any ("seccomp flags are not yet
  // supported by runc"), so a dyno config never carries them.
  const seccomp = {
    defaultAction: 'SCMP_ACT_ERRNO',
    architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
    syscalls: [
      { names: ['read', 'write', 'exit_group'], action: 'SCMP_ACT_ALLOW' },
      { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 0, op: 'SCMP_CMP_EQ' }] },
    ],
  };
  const config = dynoConfig();
  config.linux.seccomp = seccomp;
  t.doesNotThrow(() => validateOciConfig(config), 'defaultAction, architectures and syscalls of v1.0.2');

  // SCMP_ACT_KILL_PROCESS came with runtime-spec v1.1.0 (#1044): not a v1.0.2 action.
  config.linux.seccomp = { ...seccomp, defaultAction: 'SCMP_ACT_KILL_PROCESS' };
  t.match(refusal(t, config)?.message, /linux\.seccomp\.defaultAction must be one of "SCMP_ACT_KILL", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG"/);
  // Likewise SCMP_ARCH_RISCV64 (v1.1.0, #1059); an enum that long is summarised, not listed.
  config.linux.seccomp = { ...seccomp, architectures: ['SCMP_ARCH_RISCV64'] };
  t.match(refusal(t, config)?.message, /linux\.seccomp\.architectures\[0\] must be one of the 18 values the schema lists/);
  config.linux.seccomp = { ...seccomp, syscalls: [{ names: [], action: 'SCMP_ACT_ALLOW' }] };
  t.match(refusal(t, config)?.message, /linux\.seccomp\.syscalls\[0\]\.names must NOT have fewer than 1 items/);
});

// runc writes its own starting point with `runc spec` (1.1.5 says ociVersion "1.0.2-dev");
// the schema the agent trusts must accept what the runtime itself considers a valid config.
const runcInstalled = (() => {
  try {
    execFileSync('runc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

for (const args of [['spec'], ['spec', '--rootless']]) {
  t.test(`runc's own default (runc ${args.join(' ')}) validates`, { skip: !runcInstalled && 'runc is not installed' }, async (t) => {
    const dir = t.testdir();
    execFileSync('runc', args, { cwd: dir, stdio: 'ignore' });
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    t.doesNotThrow(() => validateOciConfig(config));
  });
}
