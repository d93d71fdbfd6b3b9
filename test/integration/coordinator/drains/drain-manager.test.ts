// An app's log drains through the whole coordinator: added and removed with the developer CLI
// (`slipway drains:add`, dist/cli/main.js) against the coordinator's API, fed by a scripted
// agent on a real WebSocket that ships log batches as the agent's shipper does, delivered to a
// local HTTPS receiver (certificate from a throwaway CA the coordinator is told to trust,
// --drain-ca-file's config). The drains are in PostgreSQL: a second coordinator over the same
// database delivers to them without being told again. The URL's password never shows.
import t from 'tap';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createRootLogger } from '../../../../shared/log.js';
import { DEFAULT_TIMING } from '../../../../coordinator/config.js';
import { startCoordinator, type RunningCoordinator } from '../../../../coordinator/start.js';
import { readOctetCounted } from '../../../../coordinator/drains/logplex-frame.js';
import { DEFAULT_SIZES } from '../../../../shared/sizes.js';
import { http, TEST_API_TOKEN } from '../../../helpers/http.js';
import { developerEnv, runSlipway } from '../../../helpers/slipway-cli.js';
import { connectScriptedAgent } from '../../../helpers/scripted-agent.js';
import { eventually } from '../../../helpers/host.js';
import { makePki } from '../../../helpers/pki.js';
import { testDatabase } from '../../../helpers/postgres.js';

const TOKEN = 'agent-token-for-tests-0123456789';

const slipway = (apiUrl: string, args: string[]) => runSlipway(developerEnv(apiUrl), args, 30_000);

t.test('drains:add, delivery, drains:remove, and the drain surviving into the next coordinator', async (t) => {
  const pki = await makePki(t);
  const received: { token: string | undefined; auth: string | undefined; messages: string[] }[] = [];
  const rx = createServer({ cert: pki.serverCert, key: pki.serverKey }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ token: req.headers['logplex-drain-token'] as string | undefined, auth: req.headers.authorization, messages: readOctetCounted(Buffer.concat(chunks)).messages });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => rx.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => { rx.closeAllConnections(); rx.close(); });
  const drainUrl = `https://logs:hunter2@127.0.0.1:${(rx.address() as AddressInfo).port}/in`;
  const dbUrl = await testDatabase(t);

  const start = async (id: string): Promise<RunningCoordinator> => {
    const c = await startCoordinator({
      listen: { host: '127.0.0.1', port: 0 }, routerListen: { host: '127.0.0.1', port: 0 }, token: TOKEN, apiTokens: [TEST_API_TOKEN],
      coordinatorId: id, defaultStack: 'busybox', sizes: DEFAULT_SIZES, timing: { ...DEFAULT_TIMING, leaderSessionTimeoutMs: 2_000 },
      store: { kind: 'postgres', url: dbUrl }, drainCa: pki.ca,
    }, createRootLogger({ level: 'silent' }));
    await eventually(`${id} to lead`, () => (c.role() === 'leader' ? true : undefined), 15_000);
    return c;
  };
  const ship = (agent: Awaited<ReturnType<typeof connectScriptedAgent>>, from: number, n: number) =>
    agent.sendLogs(Array.from({ length: n }, (_, i) => ({ dynoId: 'shop-web-1-x', app: 'shop', line: `2026-12-03T10:00:00.000Z app[web.1]: line ${from + i}` })));
  const numbers = () => received.flatMap((r) => r.messages).map((m) => Number(/line (\d+)$/.exec(m)?.[1]));

  const c1 = await start('drains-1');
  let closed1 = false;
  t.teardown(async () => { if (!closed1) await c1.close(); });
  const agent1 = await connectScriptedAgent({ url: c1.agentUrl, token: TOKEN });
  t.teardown(() => agent1.close());
  const put = await http('PUT', `${c1.apiUrl}/apps/shop/formation/web`, { quantity: 1, size: 'standard-1x', command: 'web', slug: { url: 'http://127.0.0.1:1/s.tgz', sha256: 'a'.repeat(64) } });
  t.equal(put.status, 200, put.body);

  const added = await slipway(c1.apiUrl, ['drains:add', '-a', 'shop', drainUrl, '--json']);
  t.equal(added.code, 0, added.stderr);
  const drain = JSON.parse(added.stdout);
  t.match(drain, { url: /^https:\/\/logs:\*\*\*@127\.0\.0\.1:\d+\/in$/, token: /^d\.[0-9a-f-]{36}$/ }, 'the drain, its password hidden, with its token');
  t.notMatch(added.stdout, /hunter2/, 'the password is never shown');
  t.match(await slipway(c1.apiUrl, ['drains:add', '-a', 'shop', drainUrl]), { code: 1, stderr: /^DRAIN_EXISTS: / });
  t.match(await slipway(c1.apiUrl, ['drains:add', '-a', 'shop', 'http://127.0.0.1:1/plain']), { code: 1, stderr: /^PROTOCOL_SCHEMA_VIOLATION: a drain is https:\/\/ or syslog\+tls:\/\// }, 'a plain-text drain is refused');
  t.match(await slipway(c1.apiUrl, ['drains:add', '-a', 'nope', drainUrl]), { code: 1, stderr: /^APP_NOT_FOUND: / });

  ship(agent1, 0, 300);
  await eventually('300 lines at the receiver', () => (numbers().length >= 300 ? true : undefined), 15_000);
  t.same(numbers(), Array.from({ length: 300 }, (_, i) => i), 'every line once, in order');
  t.ok(received.every((r) => r.token === drain.token), 'with the drain token');
  t.equal(received[0]!.auth, `Basic ${Buffer.from('logs:hunter2').toString('base64')}`, 'and the credentials of its URL');
  t.match(received[0]!.messages[0], /^<190>1 2026-12-03T10:00:00\.000Z host app web\.1 - line 0$/);
  const listed = await slipway(c1.apiUrl, ['drains', '-a', 'shop']);
  t.match(listed.stdout, new RegExp(`^URL +TOKEN +DELIVERED +DROPPED +QUEUED +LAST ERROR\\nhttps://logs:\\*\\*\\*@127\\.0\\.0\\.1:\\d+/in +${drain.token} +300 +0 +0 +-\\n$`), 'drains lists it with what it delivered');

  // The next coordinator over the same database drains without being told again.
  await agent1.close();
  await c1.close();
  closed1 = true;
  const c2 = await start('drains-2');
  t.teardown(() => c2.close());
  const agent2 = await connectScriptedAgent({ url: c2.agentUrl, token: TOKEN });
  t.teardown(() => agent2.close());
  ship(agent2, 300, 100);
  await eventually('the next coordinator to deliver', () => (numbers().length >= 400 ? true : undefined), 15_000);
  t.same(numbers().slice(300), Array.from({ length: 100 }, (_, i) => 300 + i), 'the stored drain delivered after the failover');

  const removed = await slipway(c2.apiUrl, ['drains:remove', '-a', 'shop', drain.token]);
  t.match(removed, { code: 0, stdout: /^Successfully removed drain https:\/\/logs:\*\*\*@/ }, 'removed by its token');
  ship(agent2, 400, 50);
  await new Promise((r) => setTimeout(r, 1_000));
  t.equal(numbers().length, 400, 'nothing more reaches a removed drain');
  t.match(await slipway(c2.apiUrl, ['drains:remove', '-a', 'shop', drain.token]), { code: 1, stderr: /^DRAIN_NOT_FOUND: / });
  t.match((await slipway(c2.apiUrl, ['drains', '-a', 'shop'])).stdout, /^No drains\./);
});
