// `slipway-agent dyno run`: a one-off dyno on this host without a coordinator, like
// `heroku run`. Same slug store, stacks, drivers and dyno semantics as the agent's dynos: the
// container spec (env, .profile.d, limits, user) comes from the agent's own builder
// (agent/dynos/container-spec.ts) with the host settings of the same config file, so the
// memory hard limit is `memory.r15Multiple` x quota here too, and hardening is each driver's.
// The output streams to this terminal (the dyno's stdout to stdout, stderr to stderr) and the
// command's exit code is this process's. Ctrl-C stops the dyno Heroku style (SIGTERM to all,
// grace, SIGKILL). One-off dynos are never restarted. Runs as root, beside a running agent or
// without one. The one-off gets its own network namespace like every dyno (agent/network/):
// the same bridge, table and rules, an address leased from the same directory as the agent's
// (a lease names this process, so the agent's reconcile leaves it alone), torn down at exit.
//
// The words after `--` are one command string when there is one, else a command and its
// arguments, each shell-quoted (agent/dynos/one-off.ts): `dyno run -- sh -c 'echo $HOME'`
// does what `docker run IMAGE sh -c 'echo $HOME'` does.
//
// No R14/R15 memory watch runs here (agent/dynos/memory-watch-hook.ts). The hard limit is the
// same as an agent dyno's, so a one-off can use no more memory than the agent would let it;
// reaching it is the kernel's OOM kill, which ends the command and shows in `--json` as
// `oomKilled: true`. The sample-based R15 kills at that same line, so it would add nothing,
// and R14 warnings are lines for the app's log stream: this terminal's stderr is the
// command's own, and agent lines mixed into it would break scripts that read it.
import { randomBytes, randomInt } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { withDefaults, type FileConfig } from '../config/schema.js';
import { loadCommandConfig, type CommandFlags } from '../config/flags.js';
import { optionLines } from '../config/help.js';
import { slugSettings } from '../config/load.js';
import { createRootLogger } from '../../shared/log.js';
import { createSlugStore } from '../slugs/factory.js';
import { StackStore } from '../stacks/stacks.js';
import { createDriver } from '../runtime/factory.js';
import type { ContainerSpec } from '../runtime/driver.js';
import { dynoContainerSpec } from '../dynos/container-spec.js';
import { LogFollower } from '../dynos/log-follow.js';
import { oneOffCommand } from '../dynos/one-off.js';
import { resolveSize } from '../../shared/sizes.js';
import { SlipwayError } from '../../shared/errors.js';
import { HostNetwork, NETNS_DIR } from '../network/host-network.js';
import { readSignatureFile } from '../slugs/signature.js';
import type { DynoSize } from '../../shared/protocol.js';

/** The config keys dyno run takes as flags (the schema's own flags, agent/config/schema.ts),
 * and its own. */
const DYNO_RUN_FLAGS = {
  keys: ['stateDir', 'cgroupParent', 'runtime'],
  own: {
    slug: { type: 'string', arg: 'URL', help: 'the slug (http(s)://, s3://, file://)' },
    sha256: { type: 'string', arg: 'HEX', help: 'its expected SHA-256 (recommended)' },
    signature: { type: 'string', arg: 'FILE', help: "the slug's minisign signature (needed with requireSignedSlugs)" },
    size: { type: 'string', arg: 'NAME', help: 'dyno size (default standard-1x: 512 MB)' },
    stack: { type: 'string', arg: 'NAME', help: 'stack under <state-dir>/stacks (default busybox)' },
    env: { type: 'string', multiple: true, arg: 'K=V', help: 'a config var (repeatable)' },
    'grace-ms': { type: 'string', arg: 'N', help: 'SIGTERM-to-SIGKILL grace on Ctrl-C (default 10000)' },
    json: { type: 'boolean', help: 'print a final line {exitCode, signal, oomKilled, durationMs}' },
  },
} as const satisfies CommandFlags;

export const DYNO_RUN_USAGE = `Usage: slipway-agent dyno run --slug URL [options] -- COMMAND [ARG...]

Runs COMMAND in a one-off dyno on this host and exits with its exit code. A single word
after -- is a command string for the stack's shell (-- 'echo $HOME; ls', as heroku run);
several are a command and its arguments, passed on as they are (-- sh -c 'echo $HOME', as
docker run IMAGE sh -c 'echo $HOME').

${optionLines(DYNO_RUN_FLAGS, 'stateDir, cgroupParent, runtime, dynoUser, nofile, memory.r15Multiple, the slug cache, s3')}On a failure before the command runs: exit 1 (2 for bad arguments), stderr starts with the code.
`;

/** Ctrl-C on a one-off dyno: shorter than a formation's 30 s, an operator is waiting. */
export const RUN_STOP_GRACE_MS = 10_000;

export async function dynoRunCommand(argv: string[]): Promise<number> {
  const dash = argv.indexOf('--');
  const command = dash >= 0 ? argv.slice(dash + 1) : [];
  // Flags over the config file over the schema's defaults, as for every operator command.
  const { config, values } = loadCommandConfig(dash >= 0 ? argv.slice(0, dash) : argv, DYNO_RUN_FLAGS);
  if (!values.slug) throw new SlipwayError('CONFIG_INVALID', `dyno run needs --slug\n${DYNO_RUN_USAGE}`);
  if (command.length === 0) throw new SlipwayError('CONFIG_INVALID', `dyno run needs a command after --\n${DYNO_RUN_USAGE}`);
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
  const log = createRootLogger({ level: process.env.SLIPWAY_LOG_LEVEL ?? 'silent', destination: process.stderr });
  const { stateDir } = config;
  const slugs = createSlugStore(slugSettings(config), log.child({ component: 'slugs' }));
  await slugs.init();
  const stack = new StackStore(join(stateDir, 'stacks')).resolve(values.stack ?? 'busybox');
  const driver = await createDriver(config.runtime, { cgroupParent: config.cgroupParent, log: log.child({ component: 'runtime' }), stackDir: () => stack.dir, ...(config.dockerSocket ? { dockerSocket: config.dockerSocket } : {}) });

  const started = performance.now();
  const id = `run-${randomBytes(5).toString('hex')}`;
  const signature = values.signature === undefined ? undefined : await readSignatureFile(values.signature);
  const slug = await slugs.ensure({ url: values.slug, sha256: values.sha256?.toLowerCase(), ...(signature ? { signature } : {}) }, { pin: id });
  await mkdir(join(stateDir, 'dynos'), { recursive: true, mode: 0o711 });
  const { dns, ...netSettings } = config.network;
  const network = new HostNetwork({
    ...netSettings, ...(dns ? { dns } : {}), poolSize: 0, dir: join(stateDir, 'network'), log: log.child({ component: 'network' }),
    ...(driver.netnsFactory ? { netnsFactory: driver.netnsFactory() } : {}),
  });
  await network.init({ shared: true });
  const stackName = values.stack ?? 'busybox';
  const { net } = await network.acquire({ stack: stackName, hostname: id });
  // Heroku names one-off dynos run.N with a random N.
  const handle = await driver.start({
    ...oneOffContainerSpec({ id, name: `run.${randomInt(1000, 10000)}`, size, env, command: oneOffCommand(command), stackName, stack, slugDir: slug.path, file: config }),
    network: { netns: net.netns, path: join(NETNS_DIR, net.netns), resolvConf: network.resolvConfFile },
  }).catch(async (err: unknown) => {
    await network.release(net);
    throw err;
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
      process.stdout.write(JSON.stringify({ exitCode: exit.code, signal: exit.signal, oomKilled: exit.oomKilled, durationMs: Math.round(performance.now() - started) }) + '\n');
    }
    return exit.code ?? 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await driver.destroy(handle).catch((err: unknown) => log.error({ err }, 'could not remove the one-off dyno'));
    await network.release(net);
    slugs.unpin(slug.sha256, id);
  }
}

export interface OneOff {
  id: string;
  name: string;
  size: DynoSize;
  env: Record<string, string>;
  command: string;
  stackName: string;
  stack: { dir: string; shell: string };
  slugDir: string;
  /** The config file (with the flags over it): state dir, dyno user, nofile, memory.r15Multiple. */
  file: FileConfig;
}

/** The one-off's container spec: the agent dynos' builder, with the host settings the agent
 * would take from the same config file. */
export function oneOffContainerSpec(o: OneOff): ContainerSpec {
  const c = withDefaults(o.file);
  const host = { dynosDir: join(c.stateDir, 'dynos'), dynoUser: c.dynoUser, nofile: c.nofile, r15Multiple: c.memory.r15Multiple };
  return dynoContainerSpec({ spec: { id: o.id, name: o.name, env: o.env, command: o.command, stack: o.stackName, size: o.size }, stack: o.stack, slugDir: o.slugDir, port: undefined, host });
}
