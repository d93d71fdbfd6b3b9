// The one ContainerSpec builder (container-spec.ts), and that its two users cannot drift: an
// agent dyno (what Dyno hands the driver) and the one-off of `dyno run`
// (agent/cli/dyno-run.ts oneOffContainerSpec) get the same limits for the same size and config.
import t from 'tap';
import { oneOffContainerSpec } from '../../../../agent/cli/dyno-run.js';
import { DEFAULTS } from '../../../../agent/config/schema.js';
import { dynoContainerSpec } from '../../../../agent/dynos/container-spec.js';
import { dynoArgs } from '../../../../agent/dynos/entrypoint.js';
import type { DynoSize } from '../../../../shared/protocol.js';
import { DEFAULT_SIZES } from '../../../../shared/sizes.js';
import { dynoSetup, MB, workerSpec } from '../../../helpers/fake-dyno.js';

const stack = { dir: '/stacks/busybox', shell: '/bin/sh' };

/** The spec Dyno gave the (fake) driver for a worker of `size`. */
async function agentSpec(t: Parameters<typeof dynoSetup>[0], size: DynoSize, r15Multiple?: number) {
  const s = dynoSetup(t);
  const d = s.make(workerSpec({ size }), {
    settings: { ...s.deps.settings, nofile: DEFAULTS.nofile },
    ...(r15Multiple === undefined ? {} : { memory: { r15Multiple, r14IntervalMs: 60_000 } }),
  });
  d.begin();
  await s.until('up');
  await d.stop(100);
  return s.driver.started[0]!;
}

const oneOff = (size: DynoSize, file = {}) => oneOffContainerSpec({ id: 'run-1', name: 'run.1234', size, env: {}, command: 'true', stackName: 'busybox', stack, slugDir: '/slugs/x', file });

t.test('an agent dyno and a one-off have identical limits for every size: hard limit r15Multiple x quota', async (t) => {
  for (const size of Object.values(DEFAULT_SIZES)) {
    const agent = await agentSpec(t, size);
    const run = oneOff(size);
    t.same(run.limits, agent.limits, `${size.name}: the same limits`);
    t.equal(run.limits.memoryBytes, 2 * size.memoryMb * MB, `${size.name}: 2x the quota by default (Heroku's R15 line)`);
  }
});

t.test('memory.r15Multiple of the config moves both alike', async (t) => {
  const size = DEFAULT_SIZES['standard-1x']!;
  const agent = await agentSpec(t, size, 1.5);
  const run = oneOff(size, { memory: { r15Multiple: 1.5 } });
  t.same(run.limits, agent.limits);
  t.equal(run.limits.memoryBytes, 768 * MB);
});

t.test('the spec: the prelude, the env, the identity of the dyno', async (t) => {
  const size = DEFAULT_SIZES['standard-1x']!;
  const id = `app-web-1-${'x'.repeat(70)}`;
  const spec = dynoContainerSpec({
    spec: { id, name: 'web.1', env: { A: 'b' }, command: 'bin/web', stack: 'busybox', size }, stack, slugDir: '/slugs/x', port: 5000,
    host: { dynosDir: '/state/dynos', dynoUser: { uid: 64000, gid: 64000 }, nofile: 10000, r15Multiple: 2 },
  });
  t.same(spec.args, dynoArgs('bin/web', '/bin/sh'));
  t.ok(spec.env.includes('PORT=5000') && spec.env.includes('DYNO=web.1') && spec.env.includes('A=b') && spec.env.includes('HOME=/app'));
  t.match(spec, { dynoId: id, dir: `/state/dynos/${id}`, stackName: 'busybox', stackDir: '/stacks/busybox', slugDir: '/slugs/x', cwd: '/app', user: { uid: 64000, gid: 64000 } });
  t.equal(spec.hostname, id.slice(0, 63), 'the kernel takes at most 63 bytes');
  t.same(spec.limits, { memoryBytes: 1024 * MB, cpuShares: size.cpuShares, pidsLimit: size.pidsLimit, nofile: 10000, ...(size.cpuQuotaPercent === undefined ? {} : { cpuQuotaPercent: size.cpuQuotaPercent }) });
});

t.test('a one-off has no PORT and lives under the state dir of the config', async (t) => {
  const run = oneOffContainerSpec({ id: 'run-1', name: 'run.1234', size: DEFAULT_SIZES['standard-1x']!, env: { K: 'v' }, command: 'true', stackName: 'busybox', stack, slugDir: '/slugs/x', file: { stateDir: '/srv/slipway' } });
  t.equal(run.dir, '/srv/slipway/dynos/run-1');
  t.notOk(run.env.some((e) => e.startsWith('PORT=')));
  t.ok(run.env.includes('DYNO=run.1234') && run.env.includes('K=v'));
});
