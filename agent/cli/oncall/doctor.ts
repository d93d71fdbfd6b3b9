// `slipway-agent doctor`: what breaks hosts, checked from the agent's config with or without a
// running agent (doctor-host.ts: this machine; doctor-remote.ts: the coordinator, EC2's metadata
// service, the local agent). One line per check, `ok|warn|fail  check  detail`, in a fixed
// order; exit 1 (HOST_CHECK_FAILED) when any fails. The config is resolved as `serve` resolves
// it (file, flags, env, defaults, secrets), so a config the agent would refuse is a fail line
// here, and the host checks still run on what could be read.
import { join } from 'node:path';
import { SlipwayError } from '../../../shared/errors.js';
import { DOCTOR_FLAGS } from '../../config/commands.js';
import { parseCommandLine } from '../../config/flags.js';
import { loadFileConfig } from '../../config/load.js';
import { resolveConfig, type AgentConfig } from '../../config/resolve.js';
import { withDefaults } from '../../config/schema.js';
import type { DialOptions } from '../../link/transport.js';
import { cgroupCheck, diskCheck, netfilterCheck, overlayCheck, runtimeChecks, stackCheck, stateDirChecks, type CheckResult } from './doctor-host.js';
import { agentCheck, coordinatorChecks, imdsCheck } from './doctor-remote.js';
import type { Io } from './command.js';

/** `ok    check          detail`: the status and check names padded to their columns. */
export function renderChecks(checks: readonly CheckResult[]): string {
  const width = Math.max(0, ...checks.map((c) => c.check.length));
  return checks.map((c) => `${c.status.padEnd(4)}  ${c.check.padEnd(width)}  ${c.detail}\n`).join('');
}

export async function runDoctor(argv: string[]): Promise<CheckResult[]> {
  const { configPath, flags, values } = parseCommandLine(argv, DOCTOR_FLAGS);
  const file = withDefaults(loadFileConfig(configPath, flags));
  let resolved: AgentConfig | undefined;
  let configLine: CheckResult;
  try {
    resolved = resolveConfig(configPath, flags);
    configLine = { status: 'ok', check: 'config', detail: configPath ?? 'defaults and flags (no --config)' };
  } catch (err) {
    configLine = { status: 'fail', check: 'config', detail: (err as Error).message };
  }
  const stateDir = file.stateDir;
  const diagnosticsTokenFile = file.diagnosticsTokenFile ?? join(stateDir, 'agent', 'diagnostics.token');
  const mb = 1024 * 1024;
  const [runtimes, netfilter, coordinator, imds, agent] = await Promise.all([
    runtimeChecks(file.runtime, file.dockerSocket),
    netfilterCheck(file.network.table),
    everyCoordinator(resolved),
    imdsCheck({ enabled: file.ec2.enabled, endpoint: file.ec2.endpoint }),
    agentCheck(file.diagnosticsListen, diagnosticsTokenFile),
  ]);
  return [
    configLine,
    ...runtimes,
    cgroupCheck(),
    overlayCheck(),
    diskCheck(stateDir, file.stateDirFloorMb * mb, file.slugCacheFloorMb * mb),
    ...stateDirChecks(stateDir, [diagnosticsTokenFile, ...(file.tokenFile ? [file.tokenFile] : [])]),
    ...coordinator,
    stackCheck(stateDir, values.stack ?? []),
    netfilter,
    imds,
    agent,
  ];
}

/** The coordinator checks for each of the config's URLs. With several (coordinatorUrls), each
 * line names its URL, and a follower's refusal (503 COORDINATOR_NOT_LEADER) is ok when another
 * URL took the token: the agent dials on to the leader (docs/protocol.md, "Several
 * coordinators"). With none taking it, every refusal stays a failure. */
async function everyCoordinator(resolved: AgentConfig | undefined): Promise<CheckResult[]> {
  if (!resolved) return coordinatorChecks(undefined);
  const dialFor = (url: string): DialOptions => ({ url, token: resolved.token, ca: resolved.ca, clientCert: resolved.link.clientCert });
  const urls = resolved.coordinatorUrls;
  if (urls.length === 1) return coordinatorChecks(dialFor(urls[0]!));
  const perUrl = await Promise.all(urls.map((url) => coordinatorChecks(dialFor(url))));
  const led = perUrl.some((checks) => checks.some((c) => c.check === 'coordinator.token' && c.status === 'ok'));
  return perUrl.flatMap((checks, i) => checks.map((c): CheckResult => {
    const follower = led && c.check === 'coordinator.token' && c.status === 'fail' && /\bCOORDINATOR_NOT_LEADER\b/.test(c.detail);
    return follower
      ? { ...c, status: 'ok', detail: `${urls[i]}: a follower (it refused the upgrade with COORDINATOR_NOT_LEADER); another URL leads` }
      : { ...c, detail: `${urls[i]}: ${c.detail}` };
  }));
}

export async function doctorCommand(argv: string[], io: Io): Promise<number> {
  const json = argv.includes('--json');
  const checks = await runDoctor(argv);
  const failed = checks.filter((c) => c.status === 'fail');
  io.out(json ? JSON.stringify({ ok: failed.length === 0, checks }, null, 2) + '\n' : renderChecks(checks));
  if (failed.length > 0) throw new SlipwayError('HOST_CHECK_FAILED', `${failed.length} of ${checks.length} checks failed: ${failed.map((c) => c.check).join(', ')}`);
  return 0;
}
