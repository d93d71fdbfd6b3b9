// One host of the platform as an app's developer meets it, for the e2e tests of the developer
// CLI: the coordinator and one agent (built executables) running runc dynos on a busybox stack,
// a slug served on loopback, and everything torn down at the test's end, even when it fails
// (processes, the agent's containers, mounts and cgroups, the test's network).
import { execFileSync } from 'node:child_process';
import { cpSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { busyboxStack, eventually, REPO, removeCgroupParent, tempDir, uniqueName } from './host.js';
import { spawnBin, type Spawned } from './processes.js';
import { makeSlug, serveSlugs } from './slugs.js';
import { getJson } from './http.js';
import { developerEnv } from './slipway-cli.js';
import { destroyTestNetwork, testAgentConfig } from './network.js';

export interface DevPlatform {
  dir: string;
  stateDir: string;
  cgroupParent: string;
  network: Awaited<ReturnType<typeof testAgentConfig>>['network'];
  app: string;
  /** The agents' bearer token (never an API token). */
  agentToken: string;
  agentId: string;
  apiUrl: string;
  coordinator: Spawned;
  agent: Spawned;
  /** The developer's environment (the tests' API token, a HOME of the test's own). */
  env: NodeJS.ProcessEnv;
  home: string;
  /** A slug ref of `public/index.html` for a formation's PUT. */
  slugRef: { url: string; sha256: string };
}

export async function startDevPlatform(
  t: { teardown(fn: () => unknown): void },
  o: { prefix: string; portRange: string },
): Promise<DevPlatform> {
  const dir = await tempDir(t, `slipway-${o.prefix}-`);
  const stateDir = join(dir, 'state');
  const app = uniqueName(o.prefix);
  const cgroupParent = `/${uniqueName('slipway-test-')}`;
  const token = uniqueName('token-');
  const tokenFile = join(dir, 'token');
  await writeFile(tokenFile, token + '\n', { mode: 0o600 });
  cpSync(busyboxStack(), join(stateDir, 'stacks', 'busybox'), { recursive: true, verbatimSymlinks: true });
  const { file: configFile, network } = await testAgentConfig(dir);
  const slug = await makeSlug(dir, { 'public/index.html': 'hello\n' });
  const slugs = await serveSlugs({ 'app.tgz': slug.bytes });
  t.teardown(() => slugs.close());

  const procs: Spawned[] = [];
  t.teardown(async () => {
    for (const p of procs.reverse()) await p.stop();
    execFileSync(process.execPath, [join(REPO, 'dist/agent/main.js'), 'cleanup', '--config', configFile, '--state-dir', stateDir, '--cgroup-parent', cgroupParent], { stdio: 'ignore' });
    await destroyTestNetwork(network);
    removeCgroupParent(cgroupParent);
  });

  const coordinator = spawnBin('coordinator', ['serve', '--listen', '127.0.0.1:0', '--router-listen', '127.0.0.1:0'], { SLIPWAY_COORDINATOR_TOKEN: token });
  procs.push(coordinator);
  const listening = await coordinator.waitFor('coordinator listening');
  const apiUrl = listening.apiUrl as string;
  const agentId = `agent-${app}`;
  const agent = spawnBin('agent', [
    'serve', '--config', configFile, '--coordinator', listening.agentUrl as string, '--token-file', tokenFile, '--state-dir', stateDir,
    '--address', '127.0.0.1', '--cgroup-parent', cgroupParent, '--diagnostics-listen', '127.0.0.1:0',
    '--port-range', o.portRange, '--reserved-memory-mb', '512', '--stop-grace-ms', '2000', '--agent-id', agentId,
  ]);
  procs.push(agent);
  await agent.waitFor('agent started');
  await eventually('the agent to connect', async () => ((await getJson(`${apiUrl}/agents`)) as { id: string; connected: boolean }[]).find((a) => a.id === agentId && a.connected));
  const home = join(dir, 'home');
  return {
    dir, stateDir, cgroupParent, network, app, agentToken: token, agentId, apiUrl, coordinator, agent, home,
    env: developerEnv(apiUrl, home), slugRef: { url: slugs.url('app.tgz'), sha256: slug.sha256 },
  };
}
