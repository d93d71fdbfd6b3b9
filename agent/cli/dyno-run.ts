// `slipway-agent dyno run`: a one-off dyno on this host without a coordinator, like
// `heroku run`. Same slug store, stacks, drivers and dyno semantics as the agent's dynos
// (env, .profile.d, limits, hardening); the output streams to this terminal (the dyno's
// stdout to stdout, stderr to stderr) and the command's exit code is this process's.
// Ctrl-C stops the dyno Heroku style (SIGTERM to all, grace, SIGKILL). One-off dynos are never
// restarted. Runs as root, beside a running agent or without one.
import { parseArgs } from 'node:util';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULTS, loadFileConfig, slugSettings, type FileConfig } from '../config.js';
import { createRootLogger } from '../../shared/log.js';
import { createSlugStore } from '../slugs/factory.js';
import { StackStore } from '../stacks/stacks.js';
import { createDriver, isRuntimeName } from '../runtime/factory.js';
import { dynoArgs, dynoEnv } from '../dynos/entrypoint.js';
import { LogFollower } from '../dynos/log-follow.js';
import { resolveSize } from '../../shared/sizes.js';
import { SlipwayError } from '../../shared/errors.js';
import type { DynoSpec } from '../../shared/protocol.js';

export const DYNO_RUN_USAGE = `Usage: slipway-agent dyno run --slug URL [options] -- COMMAND [ARG...]

Runs COMMAND in a one-off dyno on this host and exits with its exit code.

  --slug URL            the slug (http(s)://, s3://, file://)
  --sha256 HEX          its expected SHA-256 (recommended)
  --runtime NAME        runc, lxc or docker (default: the config's runtime, else runc)
  --size NAME           dyno size (default standard-1x: 512 MB)
  --stack NAME          stack under <state-dir>/stacks (default busybox)
  --env K=V             a config var (repeatable)
  --grace-ms N          SIGTERM-to-SIGKILL grace on Ctrl-C (default 10000)
  --json                print a final line {exitCode, signal, oomKilled, durationMs}
  --state-dir DIR, --config FILE, --cgroup-parent PATH
On a failure before the command runs: exit 1 (2 for bad arguments), stderr starts with the code.
`;

/** Ctrl-C on a one-off dyno: shorter than a formation's 30 s, an operator is waiting. */
export const RUN_STOP_GRACE_MS = 10_000;

export async function dynoRunCommand(argv: string[]): Promise<number> {
  const dash = argv.indexOf('--');
  const command = dash >= 0 ? argv.slice(dash + 1) : [];
  const { values } = parseArgs({
    args: dash >= 0 ? argv.slice(0, dash) : argv,
    options: {
      slug: { type: 'string' }, sha256: { type: 'string' }, runtime: { type: 'string' }, size: { type: 'string' },
      stack: { type: 'string' }, env: { type: 'string', multiple: true }, json: { type: 'boolean' },
      'grace-ms': { type: 'string' }, 'state-dir': { type: 'string' }, config: { type: 'string' }, 'cgroup-parent': { type: 'string' },
    },
  });
  if (!values.slug) throw new SlipwayError('CONFIG_INVALID', `dyno run needs --slug\n${DYNO_RUN_USAGE}`);
  if (command.length === 0) throw new SlipwayError('CONFIG_INVALID', `dyno run needs a command after --\n${DYNO_RUN_USAGE}`);
  const flags: FileConfig = {};
  if (values['state-dir']) flags.stateDir = values['state-dir'];
  if (values['cgroup-parent']) flags.cgroupParent = values['cgroup-parent'];
  const file = loadFileConfig(values.config, flags);
  const runtime = values.runtime ?? file.runtime ?? DEFAULTS.runtime;
  if (!isRuntimeName(runtime)) throw new SlipwayError('CONFIG_INVALID', `unknown runtime ${JSON.stringify(runtime)}`);
  const size = resolveSize(values.size ?? 'standard-1x');
  if (!size) throw new SlipwayError('CONFIG_INVALID', `unknown dyno size ${JSON.stringify(values.size)}`);
  const env: Record<string, string> = {};
  for (const kv of values.env ?? []) {
    const i = kv.indexOf('=');
    if (i < 1 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(kv.slice(0, i))) throw new SlipwayError('CONFIG_INVALID', `--env wants NAME=VALUE, got ${JSON.stringify(kv.split('=')[0])}`);
    env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const graceMs = values['grace-ms'] === undefined ? RUN_STOP_GRACE_MS : Number(values['grace-ms']);

  // Logs of the agent's components go to stderr only when asked for: the terminal is the dyno's.
  const log = createRootLogger({ level: process.env.SLIPWAY_LOG_LEVEL ?? 'silent', destination: process.stderr as never });
  const stateDir = file.stateDir ?? DEFAULTS.stateDir;
  const slugs = createSlugStore(slugSettings(file), log.child({ component: 'slugs' }));
  await slugs.init();
  const stack = new StackStore(join(stateDir, 'stacks')).resolve(values.stack ?? 'busybox');
  const driver = await createDriver(runtime, { cgroupParent: file.cgroupParent ?? DEFAULTS.cgroupParent, log: log.child({ component: 'runtime' }), ...(file.dockerSocket ? { dockerSocket: file.dockerSocket } : {}) });

  const started = Date.now();
  const id = `run-${randomBytes(5).toString('hex')}`;
  // Heroku names one-off dynos run.N with a random N; the command's words are joined as
  // `heroku run` does, and run by the stack's shell.
  const spec: Pick<DynoSpec, 'name' | 'env' | 'command' | 'stack'> = { name: `run.${randomInt(1000, 10000)}`, env, command: command.join(' '), stack: values.stack ?? 'busybox' };
  const slug = await slugs.ensure({ url: values.slug, sha256: values.sha256?.toLowerCase() }, { pin: id });
  const dynosDir = join(stateDir, 'dynos');
  await mkdir(dynosDir, { recursive: true, mode: 0o711 });
  const handle = await driver.start({
    dynoId: id, dir: join(dynosDir, id), stackName: spec.stack, stackDir: stack.dir, slugDir: slug.path,
    args: dynoArgs(spec.command, stack.shell), env: dynoEnv(spec, undefined), cwd: '/app',
    user: file.dynoUser ?? DEFAULTS.dynoUser, hostname: id,
    limits: {
      memoryBytes: size.memoryMb * 1024 * 1024, cpuShares: size.cpuShares, pidsLimit: size.pidsLimit, nofile: file.nofile ?? DEFAULTS.nofile,
      ...(size.cpuQuotaPercent === undefined ? {} : { cpuQuotaPercent: size.cpuQuotaPercent }),
    },
  });
  const follower = new LogFollower(driver.log(handle), (r) => {
    const out = r.stream === 'stderr' ? process.stderr : process.stdout;
    out.write(r.partial ? r.text : `${r.text}\n`);
  });
  follower.start();
  let stopping: Promise<unknown> | undefined;
  const onSignal = () => { stopping ??= driver.stop(handle, graceMs); };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const exit = await driver.wait(handle);
    await stopping;
    await follower.stop();
    if (values.json) {
      process.stdout.write(JSON.stringify({ exitCode: exit.code, signal: exit.signal, oomKilled: exit.oomKilled, durationMs: Date.now() - started }) + '\n');
    }
    return exit.code ?? 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await driver.destroy(handle).catch((err: unknown) => log.error({ err }, 'could not remove the one-off dyno'));
    slugs.unpin(slug.sha256, id);
  }
}
