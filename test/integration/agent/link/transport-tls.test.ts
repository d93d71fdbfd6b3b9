// Authentication of the link with real TLS: the SDK's AgentServer on an https server, the
// agent's real session dialling wss://. Certificates are made by openssl for each run.
//  - a wrong bearer token: HTTP 401 on the upgrade, no link, the agent keeps redialling with
//    backoff; the token appears in no log line on either side;
//  - a coordinator certificate that does not chain to the agent's CA: refused by the agent;
//  - a coordinator that requires client certificates: an agent without one is refused at the
//    TLS handshake, one with a certificate from the right CA gets its welcome.
import { once } from 'node:events';
import { createServer, type ServerOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { createRootLogger } from '../../../../shared/log.js';
import { DEFAULT_TIMING } from '../../../../coordinator/config.js';
import { startCoordinator } from '../../../../coordinator/start.js';
import { AgentServer } from '../../../../shared/coordinator-sdk/index.js';
import { DEFAULT_SIZES } from '../../../../shared/sizes.js';
import { AGENT_WS_PATH } from '../../../../shared/protocol.js';
import { TEST_API_TOKEN } from '../../../helpers/http.js';
import { makePki } from '../../../helpers/pki.js';
import { capturingLogger, startSession, TOKEN, until } from './fixtures/link.js';

async function coordinator(t: Test, tls: ServerOptions) {
  const { log, lines } = capturingLogger();
  const welcomed: string[] = [];
  const server = new AgentServer({
    token: TOKEN, coordinatorId: 'tls-test', log,
    app: { hello: (id) => { welcomed.push(id); return undefined; }, event: () => undefined, capacity: () => undefined },
  });
  const https = createServer(tls);
  server.attach(https);
  https.listen(0, '127.0.0.1');
  await once(https, 'listening');
  t.teardown(async () => {
    await server.close(0);
    https.closeAllConnections();
    await new Promise((r) => https.close(r));
  });
  return { url: `wss://127.0.0.1:${(https.address() as AddressInfo).port}${AGENT_WS_PATH}`, welcomed, lines, server };
}

t.test('TLS and the bearer token', async (t) => {
  const pki = await makePki(t);
  const tls = { cert: pki.serverCert, key: pki.serverKey };

  t.test('the right CA and token: welcomed over wss', async (t) => {
    const c = await coordinator(t, tls);
    const { session } = startSession(t, c.url, { ca: pki.ca });
    await until('the welcome', () => session.status().state === 'ready');
    t.same(c.welcomed, ['agent-1']);
  });

  t.test('a wrong token: 401, no link, redials with backoff, the token logged nowhere', async (t) => {
    const c = await coordinator(t, tls);
    const agentLog = capturingLogger();
    const { session } = startSession(t, c.url, { ca: pki.ca, token: 'wrong-token-9876543210', log: agentLog.log });
    await until('two refused attempts', () => session.status().reconnects >= 2, 10_000);
    t.match(session.status(), { state: 'waiting', lastError: /HTTP 401/ });
    t.same(c.welcomed, [], 'never welcomed');
    t.equal(c.server.stats().refusedUpgrades >= 2, true, 'the coordinator counted the refusals');
    for (const [side, text] of [['agent', agentLog.lines()], ['coordinator', c.lines()]] as const) {
      t.notOk(text.includes('wrong-token-9876543210') || text.includes(TOKEN), `no token in the ${side}'s log`);
    }
  });

  t.test('a coordinator certificate from another CA: refused by the agent', async (t) => {
    const c = await coordinator(t, tls);
    const { session } = startSession(t, c.url, { ca: pki.otherCa });
    await until('a refused attempt', () => session.status().reconnects >= 1, 10_000);
    t.match(session.status(), { state: 'waiting', lastError: /certificate|self.signed|unable to verify/i });
    t.same(c.welcomed, []);
  });

  t.test('the reference coordinator with --tls-cert/--tls-key/--tls-client-ca: agents over wss with a client certificate', async (t) => {
    const c = await startCoordinator({
      listen: { host: '127.0.0.1', port: 0 }, routerListen: { host: '127.0.0.1', port: 0 }, token: TOKEN, apiTokens: [TEST_API_TOKEN],
      coordinatorId: 'tls-reference', defaultStack: 'busybox', sizes: DEFAULT_SIZES, timing: { ...DEFAULT_TIMING },
      tls: { cert: pki.serverCert, key: pki.serverKey, clientCa: pki.ca },
    }, createRootLogger({ level: 'silent' }));
    t.teardown(() => c.close());
    t.match(c.agentUrl, /^wss:\/\//);
    const without = startSession(t, c.agentUrl, { ca: pki.ca });
    const withCert = startSession(t, c.agentUrl, { ca: pki.ca, clientCert: { cert: pki.clientCert, key: pki.clientKey } });
    await until('the agent with a certificate to be welcomed', () => withCert.session.status().state === 'ready');
    await until('the agent without one to be refused', () => without.session.status().reconnects >= 1, 10_000);
    // Not 'waiting' exactly: with a 50 ms first backoff the session may be dialling again by
    // the time a loaded host reads its status. What matters is that it is never welcomed.
    t.not(without.session.status().state, 'ready', 'no certificate, no link');
  });

  t.test('client certificates required: refused without one, welcomed with one', async (t) => {
    const c = await coordinator(t, { ...tls, ca: pki.ca, requestCert: true, rejectUnauthorized: true });
    const without = startSession(t, c.url, { ca: pki.ca });
    await until('a refused attempt', () => without.session.status().reconnects >= 1, 10_000);
    t.not(without.session.status().state, 'ready', 'refused: not welcomed (waiting, or dialling again)');
    t.same(c.welcomed, [], 'no welcome without a client certificate');
    const withCert = startSession(t, c.url, { ca: pki.ca, clientCert: { cert: pki.clientCert, key: pki.clientKey } });
    await until('the welcome', () => withCert.session.status().state === 'ready');
    t.same(c.welcomed, ['agent-1']);
  });
});
