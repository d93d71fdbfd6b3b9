// The diagnostics endpoint on loopback port 0, reading a fake AgentView: every error path
// answers its code with the code's status from shared/errors.ts (and the status an operator
// would expect, spelled out), and the happy paths still answer.
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { createDiagnosticsServer, type AgentView } from '../../../../agent/diagnostics/server.js';
import { httpStatusOf, type ErrorCode } from '../../../../shared/errors.js';
import { createRootLogger } from '../../../../shared/log.js';
import type { LinkStatus } from '../../../../agent/link/session.js';
import { http } from '../../../helpers/http.js';

const TOKEN = 'diagnostics-test-token-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };

const LINK: LinkStatus = {
  state: 'ready', connectedSince: '2026-11-22T10:00:00.000Z', reconnects: 0, lastError: null, unackedEvents: 0, droppedEvents: 0,
  invalidMessages: 0, lastClose: null, policyCloses: 0, spreadMs: 10, journal: null,
};

function fakeView(overrides: Partial<AgentView> = {}): AgentView {
  return {
    identity: () => ({ id: 'agent-1', hostname: 'host-1', address: '127.0.0.1', version: 'test', runtime: 'fake' }),
    dynos: () => [],
    capacity: async () => { throw new Error('not needed'); },
    link: () => LINK,
    dynoLog: async (id) => (id === 'shop-web-1-abc' ? ['hello'] : undefined),
    slugs: async () => ({ entries: 0, bytes: 0, budgetBytes: 0, freeBytes: 0, slugs: [] }),
    ...overrides,
  };
}

async function serve(t: Test, view: AgentView): Promise<string> {
  const server = createDiagnosticsServer(view, TOKEN, createRootLogger({ level: 'silent' }));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  }));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** The answer's code and status, and the status the table gives that code. */
async function errorOf(method: string, url: string, headers: Record<string, string> = {}) {
  const res = await http(method, url, undefined, headers);
  const code = (JSON.parse(res.body) as { error: { code: ErrorCode } }).error.code;
  return { status: res.status, code, tableStatus: httpStatusOf(code), headers: res.headers };
}

t.test('each error path answers its own code with the status of that code', async (t) => {
  const url = await serve(t, fakeView({ slugs: async () => { throw new Error('cache index unreadable'); } }));

  const wrongMethod = await errorOf('POST', `${url}/v1/dynos`, auth);
  t.match(wrongMethod, { status: 405, code: 'HTTP_METHOD_NOT_ALLOWED', tableStatus: 405, headers: { allow: 'GET' } }, 'a wrong method');

  const noRoute = await errorOf('GET', `${url}/v1/nope`, auth);
  t.match(noRoute, { status: 404, code: 'HTTP_NOT_FOUND', tableStatus: 404 }, 'an unknown route is not an unknown dyno');

  const noDyno = await errorOf('GET', `${url}/v1/dynos/shop-web-9-zzz/logs`, auth);
  t.match(noDyno, { status: 404, code: 'DYNO_NOT_FOUND', tableStatus: 404 }, "an unknown dyno's logs");

  for (const headers of [{}, { authorization: 'Bearer wrong-token' }, { authorization: TOKEN }] as Record<string, string>[]) {
    const badToken = await errorOf('GET', `${url}/v1/status`, headers);
    t.match(badToken, { status: 401, code: 'AUTH_INVALID_TOKEN', tableStatus: 401, headers: { 'www-authenticate': 'Bearer' } }, `a bad token: ${JSON.stringify(headers)}`);
  }
  t.match(await errorOf('GET', `${url}/v1/nope`), { status: 401, code: 'AUTH_INVALID_TOKEN' }, 'routes are not probed without the token');

  const internal = await errorOf('GET', `${url}/v1/slugs`, auth);
  t.match(internal, { status: 500, code: 'INTERNAL', tableStatus: 500 }, 'a failure inside the agent');
  t.notMatch(JSON.stringify(internal), /cache index unreadable/, 'the cause stays in the log');
});

t.test('the endpoints still answer', async (t) => {
  const url = await serve(t, fakeView());
  const health = await http('GET', `${url}/healthz`);
  t.match({ status: health.status, body: JSON.parse(health.body) }, { status: 200, body: { ok: true, link: 'ready' } }, '/healthz needs no token');
  const logs = await http('GET', `${url}/v1/dynos/shop-web-1-abc/logs?lines=5`, undefined, auth);
  t.match({ status: logs.status, body: JSON.parse(logs.body) }, { status: 200, body: { lines: ['hello'] } });
  const dynos = await http('GET', `${url}/v1/dynos`, undefined, auth);
  t.match({ status: dynos.status, body: JSON.parse(dynos.body) }, { status: 200, body: [] });
});
