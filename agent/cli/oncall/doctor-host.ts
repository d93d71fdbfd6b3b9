// `slipway-agent doctor`'s checks of the host itself: what a dyno start needs from this machine
// (the runtime and its monitor, cgroups, overlayfs, room on the disk, a state dir only root can
// write, the stacks, the agent's nftables table). Each check is bounded (HOST_CHECK_TIMEOUT_MS
// per command it runs) and never throws: what goes wrong is its `fail` line.
import { lstatSync, readdirSync, readFileSync, statfsSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:http';
import { execBounded } from '../../lib/exec.js';
import { detectCgroupVersion } from '../../host/cgroups.js';
import { StackStore } from '../../stacks/stacks.js';
import { hostCommands } from '../../network/commands.js';
import { bytes } from '../../../shared/tables.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';
export interface CheckResult { status: CheckStatus; check: string; detail: string }

/** A `--version` answers at once; 5 s is a wedged binary (or a Docker engine that hangs). */
export const HOST_CHECK_TIMEOUT_MS = 5_000;

const result = (status: CheckStatus, check: string, detail: string): CheckResult => ({ status, check, detail });
const why = (err: unknown): string => (err as NodeJS.ErrnoException).code ?? (err as Error).message;

/** Where the drivers look first (agent/runtime/runc/driver.ts), then PATH. */
const BINARIES: Record<string, string[]> = {
  runc: ['/usr/sbin/runc', '/usr/bin/runc', '/usr/local/sbin/runc'],
  conmon: ['/usr/bin/conmon', '/usr/libexec/podman/conmon', '/usr/local/bin/conmon'],
  'lxc-start': ['/usr/bin/lxc-start', '/usr/local/bin/lxc-start'],
};

async function binaryVersion(name: string, check: string): Promise<CheckResult> {
  const file = (BINARIES[name] ?? []).find((p) => existsSync(p)) ?? name;
  try {
    const r = await execBounded(file, ['--version'], { timeoutMs: HOST_CHECK_TIMEOUT_MS });
    return result('ok', check, `${file}: ${(r.stdout || r.stderr).trim().split('\n')[0]}`);
  } catch (err) {
    return result('fail', check, `${name} does not run (${(err as Error).message}): install it, or choose another runtime`);
  }
}

/** The engine's GET /version over its socket: the version and the API it serves. */
function dockerVersion(socketPath: string): Promise<CheckResult> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/version', timeout: HOST_CHECK_TIMEOUT_MS }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => {
        try {
          const v = JSON.parse(body) as { Version?: string; ApiVersion?: string };
          resolve(result(res.statusCode === 200 ? 'ok' : 'fail', 'runtime.docker', `engine ${v.Version ?? '?'} (API ${v.ApiVersion ?? '?'}) at ${socketPath}`));
        } catch {
          resolve(result('fail', 'runtime.docker', `${socketPath} answered HTTP ${res.statusCode ?? '?'} that is not the engine's JSON`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${HOST_CHECK_TIMEOUT_MS} ms`)));
    req.on('error', (err) => resolve(result('fail', 'runtime.docker', `the engine does not answer at ${socketPath} (${why(err)})`)));
    req.end();
  });
}

/** The configured runtime and what it needs (conmon monitors runc and LXC dynos); Docker's
 * engine also when a socket is configured for another runtime. */
export async function runtimeChecks(runtime: string, dockerSocket: string | undefined): Promise<CheckResult[]> {
  const out: Promise<CheckResult>[] = [];
  if (runtime === 'runc') out.push(binaryVersion('runc', 'runtime.runc'), binaryVersion('conmon', 'runtime.conmon'));
  if (runtime === 'lxc') out.push(binaryVersion('lxc-start', 'runtime.lxc'), binaryVersion('conmon', 'runtime.conmon'));
  if (runtime === 'docker' || dockerSocket) out.push(dockerVersion(dockerSocket ?? '/var/run/docker.sock'));
  return Promise.all(out);
}

/** Controllers a dyno's limits are written to: memory (R14/R15, the hard limit), cpu (shares),
 * pids (the fork bomb bound). */
const NEEDED_CONTROLLERS = ['memory', 'cpu', 'pids'];

export function cgroupCheck(root = '/sys/fs/cgroup', procCgroups = '/proc/cgroups'): CheckResult {
  try {
    const version = detectCgroupVersion(root);
    let have: string[];
    if (version === 2) {
      have = readFileSync(join(root, 'cgroup.controllers'), 'utf8').trim().split(/\s+/);
    } else {
      // v1: enabled in /proc/cgroups and mounted as a hierarchy of its own.
      have = readFileSync(procCgroups, 'utf8').split('\n').filter((l) => !l.startsWith('#') && l.trim() !== '')
        .map((l) => l.split(/\s+/)).filter((f) => f[3] === '1' && existsSync(join(root, f[0]!))).map((f) => f[0]!);
    }
    const missing = NEEDED_CONTROLLERS.filter((c) => !have.includes(c));
    const text = `v${version}, controllers ${have.filter((c) => NEEDED_CONTROLLERS.includes(c) || c === 'cpuacct' || c === 'io' || c === 'blkio').join(' ')}`;
    return missing.length > 0 ? result('fail', 'cgroups', `${text}; missing ${missing.join(' ')}: dyno limits cannot be set`) : result('ok', 'cgroups', text);
  } catch (err) {
    return result('fail', 'cgroups', `cannot read ${root} (${why(err)})`);
  }
}

export function overlayCheck(filesystems = '/proc/filesystems'): CheckResult {
  try {
    if (/\toverlay$/m.test(readFileSync(filesystems, 'utf8'))) return result('ok', 'overlayfs', 'overlay is in /proc/filesystems');
    return result('fail', 'overlayfs', 'overlay is not in /proc/filesystems: every dyno rootfs is an overlay (modprobe overlay)');
  } catch (err) {
    return result('fail', 'overlayfs', `cannot read ${filesystems} (${why(err)})`);
  }
}

/** The nearest existing directory at or above `dir`: a state dir not made yet is on its parent's disk. */
function existingParent(dir: string): string {
  let d = dir;
  while (!existsSync(d) && d !== '/') d = join(d, '..');
  return d;
}

/** Free space against the floors: under stateDirFloorMb new dynos are refused (STATE_DIR_FULL);
 * under slugCacheFloorMb the cache evicts, then refuses new slugs (SLUG_DISK_FULL). */
export function diskCheck(stateDir: string, stateFloorBytes: number, cacheFloorBytes: number): CheckResult {
  try {
    const at = existingParent(stateDir);
    const st = statfsSync(at);
    const free = Number(st.bavail) * Number(st.bsize);
    const text = `${bytes(free)} free under ${at}`;
    if (free < stateFloorBytes) return result('fail', 'disk', `${text}, below the state dir floor ${bytes(stateFloorBytes)}: new dynos are refused (STATE_DIR_FULL)`);
    if (free < cacheFloorBytes) return result('warn', 'disk', `${text}, below the slug cache floor ${bytes(cacheFloorBytes)}: new slugs evict others or are refused (SLUG_DISK_FULL)`);
    return result('ok', 'disk', `${text} (floors: state dir ${bytes(stateFloorBytes)}, slug cache ${bytes(cacheFloorBytes)})`);
  } catch (err) {
    return result('fail', 'disk', `statfs ${stateDir} failed (${why(err)})`);
  }
}

/** The state dir and the agent's own part of it: root's, not writable by group or others (a
 * user who can write there can replace a stack, a slug or a dyno record). The secrets in it
 * and the coordinator token: 0600 (or stricter), root's. */
export function stateDirChecks(stateDir: string, secrets: readonly string[]): CheckResult[] {
  const problems: string[] = [];
  const seen: string[] = [];
  for (const dir of [stateDir, ...['agent', 'dynos', 'stacks', 'slugs'].map((d) => join(stateDir, d))]) {
    let st;
    try {
      st = lstatSync(dir);
    } catch (err) {
      if (dir === stateDir) return [result('fail', 'state-dir', `${stateDir} (${why(err)}): the agent makes it at its first start`)];
      continue;
    }
    seen.push(dir);
    if (!st.isDirectory()) problems.push(`${dir} is not a directory`);
    if (st.uid !== 0) problems.push(`${dir} is owned by uid ${st.uid}, not root`);
    if ((st.mode & 0o022) !== 0) problems.push(`${dir} is writable by ${(st.mode & 0o002) !== 0 ? 'everyone' : 'its group'} (mode ${(st.mode & 0o7777).toString(8)})`);
  }
  const out = [problems.length > 0 ? result('fail', 'state-dir', problems.join('; ')) : result('ok', 'state-dir', `${seen.length} dirs root's, not group or world writable (${stateDir})`)];
  const secretProblems: string[] = [];
  const checked: string[] = [];
  for (const file of secrets) {
    let st;
    try {
      st = lstatSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      secretProblems.push(`${file} (${why(err)})`);
      continue;
    }
    checked.push(file);
    if (!st.isFile()) secretProblems.push(`${file} is not a regular file`);
    if (st.uid !== 0) secretProblems.push(`${file} is owned by uid ${st.uid}, not root`);
    if ((st.mode & 0o077) !== 0) secretProblems.push(`${file} is mode ${(st.mode & 0o7777).toString(8)}, not 0600: others can read the token`);
  }
  out.push(secretProblems.length > 0 ? result('fail', 'token-files', secretProblems.join('; ')) : result('ok', 'token-files', checked.length > 0 ? `${checked.join(', ')}: 0600, root's` : 'none written yet'));
  return out;
}

/** The stacks a dyno recorded on this host uses (its record's spec), by name. */
function recordedStacks(stateDir: string): string[] {
  const dir = join(stateDir, 'agent', 'dynos');
  const names = new Set<string>();
  let files: string[] = [];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.json'));
  } catch { /* no records */ }
  for (const f of files) {
    try {
      const stack = (JSON.parse(readFileSync(join(dir, f), 'utf8')) as { record?: { spec?: { stack?: unknown } } }).record?.spec?.stack;
      if (typeof stack === 'string') names.add(stack);
    } catch { /* a bad record is the agent's to report */ }
  }
  return [...names];
}

/** The stacks asked for (--stack) and those the host's dynos use, each installed with a usable
 * /bin/sh; with neither, at least one stack installed (a host without one runs nothing). */
export function stackCheck(stateDir: string, wanted: readonly string[]): CheckResult {
  const stacksDir = join(stateDir, 'stacks');
  const store = new StackStore(stacksDir);
  const names = [...new Set([...wanted, ...recordedStacks(stateDir)])];
  let installed: string[] = [];
  try {
    installed = readdirSync(stacksDir).filter((n) => !n.startsWith('.'));
  } catch { /* none */ }
  const check = names.length > 0 ? names : installed;
  if (check.length === 0) return result('fail', 'stacks', `no stack installed under ${stacksDir} (slipway-agent stack import NAME ARCHIVE)`);
  const bad: string[] = [];
  const good: string[] = [];
  for (const n of check) {
    try {
      good.push(`${n} (${store.resolve(n).shell})`);
    } catch (err) {
      bad.push((err as Error).message);
    }
  }
  return bad.length > 0 ? result('fail', 'stacks', bad.join('; ')) : result('ok', 'stacks', good.join(', '));
}

/** The agent's table (agent/network/nft-table.ts reads it the same way): without it dynos are
 * not kept from the host and the metadata service, and their ports are not routed. The agent
 * applies it at start and puts it back when a firewall reload flushes it. */
export async function netfilterCheck(table: string): Promise<CheckResult> {
  try {
    const json = await hostCommands().nftJson(['list', 'table', 'inet', table]) as { nftables?: Record<string, unknown>[] };
    const items = json.nftables ?? [];
    const chains = items.filter((i) => 'chain' in i).length;
    const elems = items.flatMap((i) => ((i.map as { elem?: unknown[] } | undefined)?.elem ?? [])).length;
    return result('ok', 'netfilter', `table inet ${table}: ${chains} chains, ${elems} routed ports`);
  } catch (err) {
    return result('fail', 'netfilter', `table inet ${table} is not there (${(err as Error).message.split('\n')[0]}): dynos are not isolated; the agent applies it at start`);
  }
}
