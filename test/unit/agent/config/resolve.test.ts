import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { placementZone, resolveConfig } from '../../../../agent/config/resolve.js';
import { DEFAULTS } from '../../../../agent/config/schema.js';

const dir = mkdtempSync(join(tmpdir(), 'slipway-config-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const tokenFile = join(dir, 'token');
writeFileSync(tokenFile, 'sekret\n');

t.test('flags override the file; defaults fill the rest; the token is read from its file', async (t) => {
  const file = join(dir, 'agent.json');
  writeFileSync(file, JSON.stringify({ coordinatorUrl: 'wss://coord.example/v1/agent', tokenFile, stateDir: '/srv/slipway', reservedMemoryMb: 2048 }));
  const c = resolveConfig(file, { reservedMemoryMb: 512 }, {});
  t.equal(c.coordinatorUrl, 'wss://coord.example/v1/agent');
  t.equal(c.token, 'sekret');
  t.equal(c.stateDir, '/srv/slipway');
  t.equal(c.reservedMemoryMb, 512, 'flag wins');
  t.equal(c.bootTimeoutMs, DEFAULTS.bootTimeoutMs);
  t.equal(c.diagnosticsTokenFile, '/srv/slipway/agent/diagnostics.token');
});

t.test('a bad config file is CONFIG_INVALID naming the field', async (t) => {
  const file = join(dir, 'bad.json');
  writeFileSync(file, JSON.stringify({ coordinatorUrl: 'ws://x', tokenFile, reservedMemoryMb: -5 }));
  t.throws(() => resolveConfig(file, {}, {}), { code: 'CONFIG_INVALID', message: /reservedMemoryMb/ });
  writeFileSync(file, JSON.stringify({ coordinatorUrl: 'ws://x', tokenFile, unknownKnob: 1 }));
  t.throws(() => resolveConfig(file, {}, {}), { code: 'CONFIG_INVALID' });
  writeFileSync(file, '{ not json');
  t.throws(() => resolveConfig(file, {}, {}), { code: 'CONFIG_INVALID', message: /bad\.json/ });
});

t.test('diagnostics may only listen on loopback', async (t) => {
  t.throws(() => resolveConfig(undefined, { coordinatorUrl: 'ws://x', tokenFile, diagnosticsListen: '0.0.0.0:7701' }, {}), { code: 'CONFIG_INVALID' });
  t.equal(resolveConfig(undefined, { coordinatorUrl: 'ws://x', tokenFile, diagnosticsListen: '127.0.0.1:0' }, {}).diagnosticsListen, '127.0.0.1:0');
});

t.test('missing coordinator or token are refused up front', async (t) => {
  t.throws(() => resolveConfig(undefined, { tokenFile }, {}), { code: 'CONFIG_INVALID', message: /coordinator/ });
  t.throws(() => resolveConfig(undefined, { coordinatorUrl: 'ws://x' }, {}), { code: 'CONFIG_INVALID', message: /token/ });
  t.equal(resolveConfig(undefined, { coordinatorUrl: 'ws://x' }, { SLIPWAY_AGENT_TOKEN: 'envtok' }).token, 'envtok');
  t.throws(() => resolveConfig(undefined, { coordinatorUrl: 'ws://x', tokenFile: join(dir, 'missing') }, {}), { code: 'CONFIG_INVALID' });
});

t.test('crash restart backoff: Heroku-like defaults, partial overrides, a cap below the base refused', async (t) => {
  const base = { coordinatorUrl: 'ws://x', tokenFile };
  t.same(resolveConfig(undefined, base, {}).restarts, { baseMs: 10_000, capMs: 1_200_000, stableAfterMs: 600_000, jitter: 0.25 });
  t.same(resolveConfig(undefined, { ...base, restarts: { baseMs: 100, capMs: 400 } }, {}).restarts, { baseMs: 100, capMs: 400, stableAfterMs: 600_000, jitter: 0.25 });
  t.throws(() => resolveConfig(undefined, { ...base, restarts: { baseMs: 5_000, capMs: 100 } }, {}), { code: 'CONFIG_INVALID', message: /restarts\.capMs/ });
  t.throws(() => resolveConfig(undefined, { ...base, restarts: { jitter: 2 } }, {}), { code: 'CONFIG_INVALID', message: /jitter/ });
  t.throws(() => resolveConfig(undefined, { ...base, restarts: { baseMS: 1 } as never }, {}), { code: 'CONFIG_INVALID' });
});

t.test('link: the grace for unknown dynos, and a client certificate that needs its key', async (t) => {
  const base = { coordinatorUrl: 'wss://x', tokenFile };
  t.same(resolveConfig(undefined, base, {}).link, { unknownDynoGraceMs: 120_000, clientCert: undefined });
  const cert = join(dir, 'client.crt');
  const key = join(dir, 'client.key');
  writeFileSync(cert, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
  writeFileSync(key, '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n');
  const c = resolveConfig(undefined, { ...base, link: { unknownDynoGraceMs: 5_000, clientCertFile: cert, clientKeyFile: key } }, {});
  t.equal(c.link.unknownDynoGraceMs, 5_000);
  t.match(c.link.clientCert, { cert: /BEGIN CERTIFICATE/, key: /BEGIN PRIVATE KEY/ });
  t.throws(() => resolveConfig(undefined, { ...base, link: { clientCertFile: cert } }, {}), { code: 'CONFIG_INVALID', message: /clientKeyFile/ });
  t.throws(() => resolveConfig(undefined, { ...base, link: { clientCertFile: cert, clientKeyFile: join(dir, 'missing.key') } }, {}), { code: 'CONFIG_INVALID', message: /client key/ });
  t.throws(() => resolveConfig(undefined, { ...base, link: { unknownDynoGraceMs: -1 } }, {}), { code: 'CONFIG_INVALID' });
});

t.test('env: a key neither the file nor a flag sets, converted and checked like a flag', async (t) => {
  const file = join(dir, 'env.json');
  writeFileSync(file, JSON.stringify({ tokenFile, logLevel: 'warn' }));
  const env = { SLIPWAY_COORDINATOR_URL: 'wss://from-env/v1/agent', SLIPWAY_LOG_LEVEL: 'debug' };
  const c = resolveConfig(file, {}, env);
  t.equal(c.coordinatorUrl, 'wss://from-env/v1/agent', 'the env fills what is unset');
  t.equal(c.logLevel, 'warn', 'the file beats the env');
  t.equal(resolveConfig(file, { coordinatorUrl: 'ws://flag' }, env).coordinatorUrl, 'ws://flag', 'a flag beats the env');
  t.equal(resolveConfig(undefined, { coordinatorUrl: 'ws://x', tokenFile }, { SLIPWAY_LOG_LEVEL: 'debug' }).logLevel, 'debug');
  t.equal(resolveConfig(undefined, { coordinatorUrl: 'ws://x', tokenFile }, { SLIPWAY_LOG_LEVEL: '' }).logLevel, 'info', 'an empty variable is unset');
  t.throws(() => resolveConfig(undefined, { tokenFile }, { SLIPWAY_COORDINATOR_URL: 'http://x' }), { code: 'CONFIG_INVALID', message: /^env SLIPWAY_COORDINATOR_URL "http:\/\/x": coordinatorUrl / });
  t.throws(() => resolveConfig(undefined, { coordinatorUrl: 'ws://x', tokenFile }, { SLIPWAY_LOG_LEVEL: 'loud' }), { code: 'CONFIG_INVALID', message: /SLIPWAY_LOG_LEVEL/ });
  t.throws(() => resolveConfig(undefined, { tokenFile }, {}), { message: /--coordinator, coordinatorUrl or env SLIPWAY_COORDINATOR_URL/ }, 'the message says every way to set it');
  t.throws(() => resolveConfig(undefined, { coordinatorUrl: 'ws://x' }, {}), { message: /--token-file, tokenFile or env SLIPWAY_AGENT_TOKEN/ });
});

t.test('every default and computed value, and the shape start.ts reads', async (t) => {
  const c = resolveConfig(undefined, { coordinatorUrl: 'ws://x', tokenFile }, {});
  t.same(Object.keys(c).sort(), ['address', 'agentId', 'bootTimeoutMs', 'ca', 'cgroupParent', 'coordinatorUrl', 'coordinatorUrls', 'cycling', 'diagnosticsListen', 'diagnosticsTokenFile',
    'dockerSocket', 'dynoUser', 'ec2', 'fdHeadroom', 'link', 'logLevel', 'memory', 'network', 'nofile', 'portRange', 'reservedMemoryMb', 'restarts', 'runtime', 'slugs', 'stateDir', 'stateDirFloorMb', 'stopGraceMs', 'token', 'zone'].sort());
  t.same(c.coordinatorUrls, ['ws://x'], 'one URL is a list of one');
  t.equal(c.zone, undefined, 'no zone unless configured (start.ts falls back to EC2)');
  t.same({ floor: c.stateDirFloorMb, headroom: c.fdHeadroom }, { floor: 256, headroom: 64 }, "the state dir's floor and the descriptor headroom (host/pressure.ts)");
  t.same(c.ec2, { enabled: 'auto', endpoint: undefined, pollMs: 5_000, agentIdSet: false, addressSet: false }, 'EC2 on auto; the instance may name the agent and its address');
  t.match(resolveConfig(undefined, { coordinatorUrl: 'ws://x', tokenFile, agentId: 'web-7', address: '10.1.2.3', ec2: { enabled: false } }, {}).ec2, { enabled: false, agentIdSet: true, addressSet: true });
  t.match(c, {
    stateDir: DEFAULTS.stateDir, cgroupParent: DEFAULTS.cgroupParent, runtime: 'runc', dockerSocket: undefined, ca: undefined, reservedMemoryMb: 1024,
    portRange: [20000, 29999], dynoUser: { uid: 64000, gid: 64000 }, bootTimeoutMs: 60_000, stopGraceMs: 30_000, nofile: 10_000, logLevel: 'info',
    diagnosticsListen: '127.0.0.1:7701', diagnosticsTokenFile: '/var/lib/slipway/agent/diagnostics.token', agentId: /^[A-Za-z0-9._-]{1,128}$/, address: /^[0-9.]+$/,
  });
  t.same(c.cycling, { enabled: true, periodMs: 86_400_000, jitterMs: 12_960_000 });
  t.same(c.network, { subnet: '100.72.0.0/16', bridge: 'slipway0', table: 'slipway', metadataAddresses: ['169.254.169.254', '169.254.170.2', 'fd00:ec2::254'], dns: undefined, poolSize: 4 });
  t.same(c.memory, { r15Multiple: 2, r14IntervalMs: 60_000, sampleMs: 5_000, warnHorizonMs: 600_000 });
  t.same(c.slugs, { dir: '/var/lib/slipway/slugs', owner: { uid: 64000, gid: 64000 }, budgetBytes: 20 * 1024 ** 3, floorBytes: 2 * 1024 ** 3, s3: {}, signing: { required: false, publicKeys: [] }, cgroupParent: '/slipway' });
  t.same(resolveConfig(undefined, { coordinatorUrl: 'ws://x', tokenFile, cycling: { enabled: false } }, {}).cycling, { enabled: false, periodMs: 86_400_000, jitterMs: 12_960_000 });
  t.throws(() => resolveConfig(undefined, { coordinatorUrl: 'ws://x', tokenFile, portRange: [30000, 20000] }, {}), { code: 'CONFIG_INVALID', message: /portRange 30000-20000 is empty/ });
});

t.test('coordinatorUrls: the list, or coordinatorUrl as a list of one; one source sets them', async (t) => {
  const A = 'wss://c1.internal/v1/agent';
  const B = 'wss://c2.internal/v1/agent';
  const list = resolveConfig(undefined, { coordinatorUrls: [A, B], tokenFile }, {});
  t.same(list.coordinatorUrls, [A, B], "in the operator's order");
  t.equal(list.coordinatorUrl, A, 'coordinatorUrl is the first (what doctor names first)');
  t.same(resolveConfig(undefined, { coordinatorUrl: B, tokenFile }, {}).coordinatorUrls, [B]);

  const file = join(dir, 'urls.json');
  writeFileSync(file, JSON.stringify({ coordinatorUrls: [A, B], tokenFile }));
  t.same(resolveConfig(file, {}, {}).coordinatorUrls, [A, B], 'from the file');
  t.same(resolveConfig(file, { coordinatorUrl: 'ws://flag/v1/agent' }, {}).coordinatorUrls, ['ws://flag/v1/agent'], 'a flag naming one coordinator replaces the file\'s list');
  t.same(resolveConfig(file, {}, { SLIPWAY_COORDINATOR_URL: 'ws://old-env/v1/agent' }).coordinatorUrls, [A, B], "the file's list is not joined by an old env variable");
  t.same(resolveConfig(undefined, { tokenFile }, { SLIPWAY_COORDINATOR_URLS: `${A},${B}` }).coordinatorUrls, [A, B], 'from the env, comma-separated');

  const both = join(dir, 'both.json');
  writeFileSync(both, JSON.stringify({ coordinatorUrl: A, coordinatorUrls: [A, B], tokenFile }));
  t.throws(() => resolveConfig(both, {}, {}), { code: 'CONFIG_INVALID', message: /both\.json sets both coordinatorUrl and coordinatorUrls/ });
  t.throws(() => resolveConfig(undefined, { coordinatorUrl: A, coordinatorUrls: [B], tokenFile }, {}), { code: 'CONFIG_INVALID', message: /the command line sets both/ });
  t.throws(() => resolveConfig(undefined, { tokenFile }, { SLIPWAY_COORDINATOR_URL: A, SLIPWAY_COORDINATOR_URLS: B }), { code: 'CONFIG_INVALID', message: /the environment sets both/ });
  t.throws(() => resolveConfig(undefined, { tokenFile }, {}), { code: 'CONFIG_INVALID', message: /--coordinator-urls, coordinatorUrls or env SLIPWAY_COORDINATOR_URLS/ }, 'the refusal names the list too');
  t.throws(() => resolveConfig(undefined, { coordinatorUrls: [], tokenFile }, {}), { code: 'CONFIG_INVALID', message: /coordinatorUrls/ }, 'an empty list is no list');
  t.throws(() => resolveConfig(undefined, { coordinatorUrls: ['http://x'], tokenFile }, {}), { code: 'CONFIG_INVALID', message: /coordinatorUrls\/0/ });
});

t.test("zone: the configured one, else EC2's availability zone when it is a zone name", async (t) => {
  t.equal(resolveConfig(undefined, { coordinatorUrl: 'ws://x', tokenFile, zone: 'rack-7' }, {}).zone, 'rack-7');
  t.throws(() => resolveConfig(undefined, { coordinatorUrl: 'ws://x', tokenFile, zone: 'two words' }, {}), { code: 'CONFIG_INVALID', message: /zone/ });
  t.equal(placementZone('rack-7', 'eu-west-1b'), 'rack-7', 'the operator wins over the instance');
  t.equal(placementZone(undefined, 'eu-west-1b'), 'eu-west-1b', 'EC2 names it otherwise');
  t.equal(placementZone(undefined, undefined), undefined, 'off EC2 and unconfigured: none (one unnamed zone)');
  t.equal(placementZone(undefined, '<html>error</html>'), undefined, 'an odd metadata answer is no zone, not a hello the coordinator refuses');
  t.equal(placementZone(undefined, 'z'.repeat(65)), undefined);
});
