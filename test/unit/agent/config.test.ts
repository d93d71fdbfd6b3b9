import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig, DEFAULTS } from '../../../agent/config.js';

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
