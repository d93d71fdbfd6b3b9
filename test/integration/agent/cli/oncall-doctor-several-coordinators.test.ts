// `slipway-agent doctor` with coordinatorUrls, in process, against two coordinators on
// loopback: a follower refusing the upgrade (503 COORDINATOR_NOT_LEADER, as refuseUpgrade of
// the SDK answers) and a leader (an AgentServer). Every URL is checked and named in its lines;
// the follower's refusal is ok while another URL leads, and a failure when none does.
import t, { type Test } from 'tap';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDoctor } from '../../../../agent/cli/oncall/doctor.js';
import { AgentServer, refuseUpgrade } from '../../../../shared/coordinator-sdk/index.js';
import { AGENT_WS_PATH } from '../../../../shared/protocol.js';

const TOKEN = 'doctor-test-token-0123456789abcdef';
const silent = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

async function listen(t: Test, server: Server): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });
  return `ws://127.0.0.1:${(server.address() as AddressInfo).port}${AGENT_WS_PATH}`;
}

async function follower(t: Test): Promise<string> {
  const http = createServer((_req, res) => res.end());
  http.on('upgrade', (_req, socket) => refuseUpgrade(socket, 'COORDINATOR_NOT_LEADER', 'a follower', 1));
  return listen(t, http);
}

async function leader(t: Test): Promise<string> {
  const server = new AgentServer({ token: TOKEN, coordinatorId: 'leader', epoch: 1, log: silent, app: { hello: () => undefined, event: () => undefined, capacity: () => undefined } });
  t.teardown(() => server.close(0));
  const http = createServer((_req, res) => res.end());
  server.attach(http);
  return listen(t, http);
}

async function doctorWith(t: Test, urls: string[]) {
  const dir = await mkdtemp(join(tmpdir(), 'slipway-doctor-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const tokenFile = join(dir, 'token');
  await writeFile(tokenFile, `${TOKEN}\n`);
  const checks = await runDoctor(['--coordinator-urls', urls.join(','), '--token-file', tokenFile, '--state-dir', join(dir, 'state'), '--diagnostics-listen', '127.0.0.1:1']);
  return checks.filter((c) => c.check.startsWith('coordinator'));
}

t.test('a follower and the leader: both checked, the follower ok because the other URL leads', async (t) => {
  const f = await follower(t);
  const l = await leader(t);
  const checks = await doctorWith(t, [f, l]);
  const token = checks.filter((c) => c.check === 'coordinator.token');
  t.equal(token.length, 2, 'one token check per URL');
  t.match(token[0], { status: 'ok', detail: new RegExp(`^${f}: a follower .*COORDINATOR_NOT_LEADER.*another URL leads`) });
  t.match(token[1], { status: 'ok', detail: new RegExp(`^${l}: the WebSocket upgrade with the agent token was accepted`) });
  t.ok(checks.every((c) => c.detail.startsWith(`${f}: `) || c.detail.startsWith(`${l}: `)), 'every line names its URL');
});

t.test('two followers and no leader: the refusals are failures', async (t) => {
  const checks = await doctorWith(t, [await follower(t), await follower(t)]);
  const token = checks.filter((c) => c.check === 'coordinator.token');
  t.match(token, [{ status: 'fail', detail: /HTTP 503 COORDINATOR_NOT_LEADER/ }, { status: 'fail', detail: /HTTP 503 COORDINATOR_NOT_LEADER/ }]);
});
