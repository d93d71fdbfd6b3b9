// The one place a dyno's runtime ContainerSpec is built: for the agent's dynos (dyno.ts) and
// for the one-off `dyno run` (agent/cli/dyno-run.ts), so that the two cannot drift apart (they
// had: the one-off got the bare quota as its memory limit, agent dynos r15Multiple x quota).
//
//   args      the entrypoint's prelude (entrypoint.ts: .profile.d, .profile, the stack's shell)
//   env       config vars, then DYNO, PORT (web dynos) and HOME (entrypoint.ts)
//   limits    memory hard limit r15Multiple x quota (memory-policy.ts: the R15 line), cpu
//             shares and optional quota, pids and RLIMIT_NOFILE from the dyno's size and host
//   identity  the dyno user, hostname = dyno id (at most 63 bytes, the kernel's limit), cwd /app
//
// Hardening (capabilities, seccomp, no new privileges, read-only stack) is not in the spec:
// every driver applies the same (agent/runtime/hardening.ts), whoever asked for the dyno.
import { join } from 'node:path';
import type { DynoAttachSpec, DynoSize, DynoSpec } from '../../shared/protocol.js';
import type { ContainerLimits, ContainerSpec, ContainerStdio } from '../runtime/driver.js';
import { dynoArgs, dynoEnv } from './entrypoint.js';
import { memoryLimitBytes } from './memory-policy.js';

/** What the host decides for every dyno on it (the agent's config; `dyno run` reads the same file). */
export interface DynoHostSettings {
  /** Each dyno's directory is `<dynosDir>/<id>`. */
  dynosDir: string;
  dynoUser: { uid: number; gid: number };
  nofile: number;
  /** The kernel's memory limit is this multiple of the quota (DEFAULT_MEMORY_SETTINGS: 2). */
  r15Multiple: number;
}

export type ContainerSpecInput = {
  spec: Pick<DynoSpec, 'id' | 'name' | 'env' | 'command' | 'stack' | 'size' | 'attach'>;
  stack: { dir: string; shell: string };
  slugDir: string;
  /** A web dyno's $PORT; undefined for every other process type. */
  port: number | undefined;
  host: DynoHostSettings;
};

export function dynoLimits(size: DynoSize, host: Pick<DynoHostSettings, 'nofile' | 'r15Multiple'>): ContainerLimits {
  return {
    memoryBytes: memoryLimitBytes(size.memoryMb * 1024 * 1024, host.r15Multiple),
    cpuShares: size.cpuShares,
    ...(size.cpuQuotaPercent === undefined ? {} : { cpuQuotaPercent: size.cpuQuotaPercent }),
    pidsLimit: size.pidsLimit,
    nofile: host.nofile,
  };
}

export function dynoContainerSpec({ spec, stack, slugDir, port, host }: ContainerSpecInput): ContainerSpec {
  return {
    dynoId: spec.id,
    dir: join(host.dynosDir, spec.id),
    stackName: spec.stack,
    stackDir: stack.dir,
    slugDir,
    args: dynoArgs(spec.command, stack.shell),
    env: dynoEnv(spec, port),
    cwd: '/app',
    user: host.dynoUser,
    hostname: spec.id.slice(0, 63),
    limits: dynoLimits(spec.size, host),
    // An attached one-off (`slipway run`): stdio to the attach hook (attach-hook.ts), not to the log.
    ...(spec.attach ? { stdio: attachStdio(spec.attach) } : {}),
  };
}

function attachStdio(a: DynoAttachSpec): ContainerStdio {
  const stdio: ContainerStdio = { stdin: true, tty: a.tty };
  if (a.tty && a.cols !== undefined) stdio.cols = a.cols;
  if (a.tty && a.rows !== undefined) stdio.rows = a.rows;
  return stdio;
}
