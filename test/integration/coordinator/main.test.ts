// slipway-coordinator as a process: spawned from its TypeScript source with tap's loader.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { API_AUTH, TEST_API_TOKEN } from '../../helpers/http.js';

const MAIN = fileURLToPath(new URL('../../../coordinator/main.ts', import.meta.url));
// The TypeScript loader tap runs this test with, so the child can run main.ts as well.
const LOADER = process.execArgv.filter((a) => a.includes('@tapjs/typescript'));

function runCoordinator(t: Test, args: string[], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, [...LOADER, MAIN, ...args], {
    // Neither token from the test's own environment: each case gives the ones it means to.
    env: { ...process.env, SLIPWAY_COORDINATOR_TOKEN: '', SLIPWAY_API_TOKEN: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return child;
}

async function exited(child: ChildProcess): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

t.test('serve on port 0 logs its real URLs, serves, and exits 0 on SIGTERM', async (t) => {
  const child = runCoordinator(t, ['serve', '--listen', '127.0.0.1:0', '--router-listen', '127.0.0.1:0'], { SLIPWAY_COORDINATOR_TOKEN: 'cli-test-token', SLIPWAY_API_TOKEN: TEST_API_TOKEN });
  const done = exited(child);
  const lines = createInterface({ input: child.stdout! });
  let listening: { apiUrl: string; routerUrl: string; agentUrl: string } | undefined;
  for await (const line of lines) {
    const entry = JSON.parse(line) as { msg?: string; apiUrl: string; routerUrl: string; agentUrl: string };
    if (entry.msg === 'coordinator listening') {
      listening = entry;
      break;
    }
  }
  t.ok(listening, 'the listening line was logged');
  t.match(listening?.agentUrl, /^ws:\/\/127\.0\.0\.1:\d+\/v1\/agent$/);
  t.not(new URL(listening!.apiUrl).port, '0');
  const health = await fetch(`${listening!.apiUrl}/healthz`, { headers: API_AUTH });
  t.equal(health.status, 200);
  t.match(await health.json(), { ok: true, agentsConnected: 0 });
  child.kill('SIGTERM');
  const { code } = await done;
  t.equal(code, 0);
});

t.test('without a token it refuses to start: exit 2 and a CONFIG_INVALID line', async (t) => {
  const { code, stderr } = await exited(runCoordinator(t, ['serve']));
  t.equal(code, 2);
  t.match(stderr, /^CONFIG_INVALID: .*token/m);
});

t.test('with the agents\' token but no API token it refuses to start: exit 2 and a CONFIG_INVALID line', async (t) => {
  const { code, stderr } = await exited(runCoordinator(t, ['serve', '--listen', '127.0.0.1:0', '--router-listen', '127.0.0.1:0'], { SLIPWAY_COORDINATOR_TOKEN: 'cli-test-token' }));
  t.equal(code, 2);
  t.match(stderr, /^CONFIG_INVALID: no API token: pass --api-token-file/m);
});

t.test('--help prints the usage and exits 0', async (t) => {
  const { code, stdout } = await exited(runCoordinator(t, ['--help']));
  t.equal(code, 0);
  t.match(stdout, /Usage: slipway-coordinator serve/);
  t.match(stdout, /--router-listen/);
});
