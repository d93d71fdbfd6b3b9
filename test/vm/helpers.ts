// Helpers of the VM suite (scripts/vm/run.sh boots the guest and runs test/vm/ in it): the
// check that a test really runs on a production-like host, bounds scaled for a guest that runs
// 10-17x slower than this machine, systemctl and journalctl, the agent's unit installed from
// systemd/slipway-agent.service, and a reference coordinator inside the guest (the guest has
// no network: the agent dials it on loopback). Every helper that makes something registers its
// removal with t.teardown.
import type { Test } from 'tap';
import { execFile, execFileSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { detectCgroupVersion } from '../../agent/host/cgroups.js';
import { busyboxStack, eventually, REPO, removeCgroupParent, uniqueName } from '../helpers/host.js';
import { spawnBin, type Spawned } from '../helpers/processes.js';
import { destroyTestNetwork, testNetworkSettings } from '../helpers/network.js';
import type { HostNetworkSettings } from '../../agent/network/host-network.js';
import { getJson } from '../helpers/http.js';

const run = promisify(execFile);

/** How much slower the guest is than this machine (REAL-HOST.md: `node -e 0` 364 ms, `runc
 * run` 420-660 ms, 10-17x the host); bounds written for the host are multiplied by it. */
export const GUEST_SLOWDOWN = 15;

/** A bound of `hostMs` on the host, in the guest. */
export function guestMs(hostMs: number): number {
  return hostMs * GUEST_SLOWDOWN;
}

/** Waits until `fn` gives a value (not undefined or false), at most `timeoutMs` (guest time),
 * polling every `everyMs`. Throws with `what` and the last error when the bound passes. */
export function waitUntil<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000, everyMs = 250): Promise<T> {
  return eventually(what, fn, timeoutMs, everyMs);
}

/** The facts the whole suite stands on: systemd is pid 1 and cgroup v2 is the only hierarchy
 * at /sys/fs/cgroup. Asserted first in every file, so that the suite fails loudly if it is run
 * somewhere else (this machine kind: cgroup v1, no systemd). */
export function assertProductionLikeHost(t: Test): void {
  const pid1 = readlinkSync('/proc/1/exe');
  t.match(pid1, /\/systemd$/, `pid 1 is systemd (${pid1})`);
  const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' '));
  const cg = mounts.filter((m) => m[1] === '/sys/fs/cgroup');
  t.same(cg.map((m) => m[2]), ['cgroup2'], 'cgroup2 is mounted at /sys/fs/cgroup');
  t.same(mounts.filter((m) => m[2] === 'cgroup').map((m) => m[1]), [], 'no cgroup v1 hierarchy is mounted');
  t.equal(detectCgroupVersion(), 2, "the agent's own detection says v2");
  const controllers = readFileSync('/sys/fs/cgroup/cgroup.controllers', 'utf8').trim().split(' ');
  for (const c of ['cpu', 'memory', 'pids']) t.ok(controllers.includes(c), `the ${c} controller is available`);
}

/** systemctl, bounded (a wedged pid 1 must fail the test, not hang it). */
export async function systemctl(...args: string[]): Promise<string> {
  const { stdout } = await run('systemctl', args, { timeout: guestMs(10_000) });
  return stdout;
}

/** `systemctl show UNIT -p A,B`: the properties as an object. */
export async function unitProperties(unit: string, props: string[]): Promise<Record<string, string>> {
  const out = await systemctl('show', unit, '-p', props.join(','));
  return Object.fromEntries(out.trim().split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

/** The unit's journal as the agent wrote it (`journalctl -u UNIT -o cat`), each line parsed as
 * JSON where it is (pino's lines), with the raw text kept for the rest. */
export async function journalLines(unit: string): Promise<{ raw: string; json: Record<string, unknown> | undefined }[]> {
  // journald writes asynchronously: flush what it holds before reading.
  await run('journalctl', ['--flush'], { timeout: guestMs(5_000) }).catch(() => undefined);
  const { stdout } = await run('journalctl', ['-u', unit, '-o', 'cat', '--no-pager'], { timeout: guestMs(10_000), maxBuffer: 64 * 1024 * 1024 });
  return stdout.split('\n').filter(Boolean).map((raw) => {
    try {
      const v: unknown = JSON.parse(raw);
      return { raw, json: v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : undefined };
    } catch {
      return { raw, json: undefined };
    }
  });
}

export const AGENT_UNIT = 'slipway-agent.service';
const UNIT_DIR = '/etc/systemd/system';

/**
 * Installs systemd/slipway-agent.service as an operator would, with two paths rewritten: the
 * agent from this repo's build (/work/main/dist in the guest) instead of /opt/slipway, and
 * `configFile` as its --config. `dropIn` is written as a drop-in (e.g. `[Service]\nWatchdogSec=4s`).
 * The teardown stops the unit, removes it and reloads systemd.
 */
export async function installAgentUnit(t: Test, configFile: string, dropIn?: string): Promise<string> {
  const source = readFileSync(join(REPO, 'systemd', 'slipway-agent.service'), 'utf8');
  const unit = source
    .replaceAll('/opt/slipway/dist/agent/main.js', join(REPO, 'dist', 'agent', 'main.js'))
    .replaceAll('/etc/slipway/agent.json', configFile);
  const file = join(UNIT_DIR, AGENT_UNIT);
  await writeFile(file, unit);
  const dropInDir = `${file}.d`;
  if (dropIn) {
    await mkdir(dropInDir, { recursive: true });
    await writeFile(join(dropInDir, 'test.conf'), dropIn);
  }
  t.teardown(async () => {
    await systemctl('stop', AGENT_UNIT).catch(() => undefined);
    await rm(file, { force: true });
    await rm(dropInDir, { recursive: true, force: true });
    await systemctl('daemon-reload').catch(() => undefined);
    await systemctl('reset-failed', AGENT_UNIT).catch(() => undefined);
  });
  await systemctl('daemon-reload');
  return unit;
}

export interface GuestCoordinator {
  proc: Spawned;
  token: string;
  tokenFile: string;
  apiUrl: string;
  agentUrl: string;
  routerUrl: string;
  /** The coordinator's view of one agent (GET /agents), or undefined. */
  agent(id: string): Promise<Record<string, any> | undefined>;
}

/** The reference coordinator as a real process in the guest, on loopback, with its token in a
 * file an agent can read. Stopped by the teardown. */
export async function startGuestCoordinator(t: Test, dir: string): Promise<GuestCoordinator> {
  const token = uniqueName('token-');
  const tokenFile = join(dir, 'token');
  await writeFile(tokenFile, token + '\n', { mode: 0o600 });
  const proc = spawnBin('coordinator', ['serve', '--listen', '127.0.0.1:0', '--router-listen', '127.0.0.1:0'], { SLIPWAY_COORDINATOR_TOKEN: token });
  t.teardown(() => proc.stop());
  const listening = await proc.waitFor('coordinator listening', guestMs(4_000));
  const apiUrl = listening.apiUrl as string;
  return {
    proc, token, tokenFile, apiUrl, agentUrl: listening.agentUrl as string, routerUrl: listening.routerUrl as string,
    agent: async (id) => ((await getJson(`${apiUrl}/agents`)) as Record<string, any>[]).find((a) => a.id === id),
  };
}

export interface GuestAgentConfig {
  file: string;
  agentId: string;
  stateDir: string;
  cgroupParent: string;
  network: HostNetworkSettings;
}

/**
 * An agent config file for a coordinator in the guest: a state dir (with the busybox stack
 * installed as `busybox`), cgroup parent, bridge, subnet and nftables table of the test's own
 * (`extra` adds keys). The teardown runs the
 * agent's own `cleanup` (containers, mounts, the dyno network), then removes the state dir and
 * the cgroup parent: call it before installAgentUnit, so that the unit is stopped first.
 */
export async function guestAgentConfig(t: Test, dir: string, coordinator: GuestCoordinator, extra: Record<string, unknown> = {}): Promise<GuestAgentConfig> {
  const agentId = uniqueName('vm-agent-');
  const stateDir = join(dir, 'state');
  const cgroupParent = `/${uniqueName('slipway-vm-')}`;
  const network = testNetworkSettings(dir);
  cpSync(busyboxStack(), join(stateDir, 'stacks', 'busybox'), { recursive: true, verbatimSymlinks: true });
  const file = join(dir, 'agent.json');
  await writeFile(file, JSON.stringify({
    coordinatorUrl: coordinator.agentUrl, tokenFile: coordinator.tokenFile, agentId, address: '127.0.0.1',
    stateDir, cgroupParent, diagnosticsListen: '127.0.0.1:0', reservedMemoryMb: 256,
    network: { bridge: network.bridge, subnet: network.subnet, table: network.table, poolSize: 0 },
    ...extra,
  }, null, 2));
  t.teardown(async () => {
    if (existsSync(join(REPO, 'dist', 'agent', 'main.js'))) {
      try {
        execFileSync(process.execPath, [join(REPO, 'dist', 'agent', 'main.js'), 'cleanup', '--config', file, '--state-dir', stateDir, '--cgroup-parent', cgroupParent], { stdio: 'ignore', timeout: guestMs(10_000) });
      } catch { /* reported by the leftover checks */ }
    }
    await destroyTestNetwork({ ...network, dir: join(stateDir, 'network') });
    removeCgroupParent(cgroupParent);
  });
  return { file, agentId, stateDir, cgroupParent, network };
}

/** The diagnostics token the agent wrote into its state dir. */
export async function diagnosticsToken(stateDir: string): Promise<string> {
  return (await readFile(join(stateDir, 'agent', 'diagnostics.token'), 'utf8')).trim();
}
