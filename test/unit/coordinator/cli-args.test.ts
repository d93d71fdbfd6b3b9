import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { configFromArgs } from '../../../coordinator/cli-args.js';
import { parseListenAddress } from '../../../coordinator/config.js';

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-coord-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('serve with the env token and defaults', async (t) => {
  const config = configFromArgs(['serve'], { SLIPWAY_COORDINATOR_TOKEN: 's3cret\n' });
  if (config === 'help') throw new Error('unexpected help');
  t.equal(config.token, 's3cret');
  t.same(config.listen, { host: '127.0.0.1', port: 7700 });
  t.same(config.routerListen, { host: '127.0.0.1', port: 7780 });
  t.equal(config.defaultStack, 'busybox');
  t.equal(config.timing.commandTimeoutMs, 30_000);
});

t.test('--token-file wins over the env and is trimmed', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'token'), 'from-file\n');
  const config = configFromArgs(['serve', '--token-file', join(dir, 'token'), '--listen', '0.0.0.0:0'], { SLIPWAY_COORDINATOR_TOKEN: 'env' });
  t.match(config, { token: 'from-file', listen: { host: '0.0.0.0', port: 0 } });
});

t.test('no token, an unreadable token file, a bad flag or subcommand: CONFIG_INVALID', async (t) => {
  t.throws(() => configFromArgs(['serve'], {}), { code: 'CONFIG_INVALID', message: /token/ });
  t.throws(() => configFromArgs(['serve', '--token-file', '/nonexistent/token'], {}), { code: 'CONFIG_INVALID' });
  t.throws(() => configFromArgs(['serve', '--bogus'], { SLIPWAY_COORDINATOR_TOKEN: 'x' }), { code: 'CONFIG_INVALID' });
  t.throws(() => configFromArgs([], { SLIPWAY_COORDINATOR_TOKEN: 'x' }), { code: 'CONFIG_INVALID', message: /serve/ });
  t.throws(() => configFromArgs(['serve', '--listen', 'nowhere'], { SLIPWAY_COORDINATOR_TOKEN: 'x' }), { code: 'CONFIG_INVALID', message: /--listen/ });
  t.throws(() => configFromArgs(['serve', '--default-stack', 'Bad Stack'], { SLIPWAY_COORDINATOR_TOKEN: 'x' }), { code: 'CONFIG_INVALID' });
});

t.test('--help needs no token', async (t) => {
  t.equal(configFromArgs(['--help'], {}), 'help');
  t.equal(configFromArgs(['serve', '--help'], {}), 'help');
});

t.test('--sizes-file replaces the size table after validation', async (t) => {
  const dir = tempDir(t);
  const good = join(dir, 'sizes.json');
  writeFileSync(good, JSON.stringify({ tiny: { name: 'tiny', memoryMb: 64, cpuShares: 128, pidsLimit: 64 } }));
  const config = configFromArgs(['serve', '--sizes-file', good], { SLIPWAY_COORDINATOR_TOKEN: 'x' });
  t.same(config !== 'help' && Object.keys(config.sizes), ['tiny']);
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, JSON.stringify({ tiny: { name: 'other', memoryMb: 64, cpuShares: 128, pidsLimit: 64 } }));
  t.throws(() => configFromArgs(['serve', '--sizes-file', bad], { SLIPWAY_COORDINATOR_TOKEN: 'x' }), { code: 'CONFIG_INVALID' });
});

t.test('listen addresses', async (t) => {
  t.same(parseListenAddress('[::1]:8080', '--listen'), { host: '::1', port: 8080 });
  t.same(parseListenAddress(':9000', '--listen'), { host: '127.0.0.1', port: 9000 });
  t.throws(() => parseListenAddress('127.0.0.1:70000', '--listen'), { code: 'CONFIG_INVALID' });
});

t.test('TLS flags: cert and key together, a client CA only with them, PEM required', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-coord-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const pem = (name: string) => {
    const path = join(dir, name);
    writeFileSync(path, `-----BEGIN ${name.toUpperCase()}-----\nAAAA\n-----END ${name.toUpperCase()}-----\n`);
    return path;
  };
  const env = { SLIPWAY_COORDINATOR_TOKEN: 'x' };
  const config = configFromArgs(['serve', '--tls-cert', pem('cert'), '--tls-key', pem('key'), '--tls-client-ca', pem('ca')], env);
  t.match(config, { tls: { cert: /BEGIN CERT/, key: /BEGIN KEY/, clientCa: /BEGIN CA/ } });
  t.notOk((configFromArgs(['serve'], env) as { tls?: unknown }).tls, 'plain by default');
  t.throws(() => configFromArgs(['serve', '--tls-cert', pem('cert')], env), { code: 'CONFIG_INVALID', message: /go together/ });
  t.throws(() => configFromArgs(['serve', '--tls-client-ca', pem('ca')], env), { code: 'CONFIG_INVALID', message: /needs --tls-cert/ });
  writeFileSync(join(dir, 'junk'), 'not a certificate');
  t.throws(() => configFromArgs(['serve', '--tls-cert', join(dir, 'junk'), '--tls-key', pem('key')], env), { code: 'CONFIG_INVALID', message: /no PEM/ });
});
