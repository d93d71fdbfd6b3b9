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

/** An API token (>= 16 characters): the API needs one as the agents need theirs. */
const API_TOKEN = 'api-token-for-tests-0123456789';
/** The agents' token and an API token, as every config that should load needs both. */
const TOKENS = { SLIPWAY_COORDINATOR_TOKEN: 'x', SLIPWAY_API_TOKEN: API_TOKEN };

t.test('serve with the env tokens and defaults', async (t) => {
  const config = configFromArgs(['serve'], { SLIPWAY_COORDINATOR_TOKEN: 's3cret\n', SLIPWAY_API_TOKEN: `${API_TOKEN}\n` });
  if (config === 'help') throw new Error('unexpected help');
  t.equal(config.token, 's3cret');
  t.same(config.apiTokens, [API_TOKEN], 'the env API token, trimmed');
  t.same(config.listen, { host: '127.0.0.1', port: 7700 });
  t.same(config.routerListen, { host: '127.0.0.1', port: 7780 });
  t.equal(config.defaultStack, 'busybox');
  t.equal(config.timing.commandTimeoutMs, 30_000);
});

t.test('--token-file wins over the env and is trimmed', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'token'), 'from-file\n');
  const config = configFromArgs(['serve', '--token-file', join(dir, 'token'), '--listen', '0.0.0.0:0'], { SLIPWAY_COORDINATOR_TOKEN: 'env', SLIPWAY_API_TOKEN: API_TOKEN });
  t.match(config, { token: 'from-file', listen: { host: '0.0.0.0', port: 0 } });
});

t.test('no token, an unreadable token file, a bad flag or subcommand: CONFIG_INVALID', async (t) => {
  t.throws(() => configFromArgs(['serve'], { SLIPWAY_API_TOKEN: API_TOKEN }), { code: 'CONFIG_INVALID', message: /no agent token/ });
  t.throws(() => configFromArgs(['serve', '--token-file', '/nonexistent/token'], {}), { code: 'CONFIG_INVALID' });
  t.throws(() => configFromArgs(['serve', '--bogus'], TOKENS), { code: 'CONFIG_INVALID' });
  t.throws(() => configFromArgs([], TOKENS), { code: 'CONFIG_INVALID', message: /serve/ });
  t.throws(() => configFromArgs(['serve', '--listen', 'nowhere'], TOKENS), { code: 'CONFIG_INVALID', message: /--listen/ });
  t.throws(() => configFromArgs(['serve', '--default-stack', 'Bad Stack'], TOKENS), { code: 'CONFIG_INVALID' });
});

t.test('no API token: CONFIG_INVALID naming --api-token-file and SLIPWAY_API_TOKEN', async (t) => {
  for (const env of [{ SLIPWAY_COORDINATOR_TOKEN: 'x' }, { SLIPWAY_COORDINATOR_TOKEN: 'x', SLIPWAY_API_TOKEN: ' \n' }]) {
    t.throws(() => configFromArgs(['serve'], env), { code: 'CONFIG_INVALID', message: /no API token: pass --api-token-file PATH or set SLIPWAY_API_TOKEN/ });
  }
});

t.test('--api-token-file: one token a line, comments and blank lines skipped; it wins over the env', async (t) => {
  const dir = t.testdir({
    'api-tokens': `# the developers' CLI\n${API_TOKEN}\n\n  second-api-token-abcdefghijklmn  \n# rotated out: old-api-token-0000000000\n`,
    'comments-only': '# nothing here yet\n\n',
  });
  const config = configFromArgs(['serve', '--api-token-file', join(dir, 'api-tokens')], { SLIPWAY_COORDINATOR_TOKEN: 'x', SLIPWAY_API_TOKEN: 'env-api-token-0123456789abcdef' });
  t.match(config, { token: 'x' });
  t.same(config !== 'help' && config.apiTokens, [API_TOKEN, 'second-api-token-abcdefghijklmn'], 'both tokens, trimmed, and not the env one');
  t.throws(() => configFromArgs(['serve', '--api-token-file', join(dir, 'comments-only')], { SLIPWAY_COORDINATOR_TOKEN: 'x' }), { code: 'CONFIG_INVALID', message: /holds no API token/ });
  t.throws(() => configFromArgs(['serve', '--api-token-file', join(dir, 'absent')], { SLIPWAY_COORDINATOR_TOKEN: 'x' }), { code: 'CONFIG_INVALID', message: /cannot read --api-token-file/ });
});

t.test('an API token shorter than 16 characters or with whitespace: CONFIG_INVALID', async (t) => {
  const dir = t.testdir({ short: `${API_TOKEN}\nshort-token-15c\n`, spaced: 'an api token with spaces in it\n' });
  t.throws(() => configFromArgs(['serve'], { SLIPWAY_COORDINATOR_TOKEN: 'x', SLIPWAY_API_TOKEN: 'short-token-15c' }), { code: 'CONFIG_INVALID', message: /at least 16 characters/ });
  t.throws(() => configFromArgs(['serve', '--api-token-file', join(dir, 'short')], { SLIPWAY_COORDINATOR_TOKEN: 'x' }), { code: 'CONFIG_INVALID', message: /at least 16 characters/ }, 'one short token in a file refuses the file');
  t.throws(() => configFromArgs(['serve', '--api-token-file', join(dir, 'spaced')], { SLIPWAY_COORDINATOR_TOKEN: 'x' }), { code: 'CONFIG_INVALID', message: /no whitespace/ });
  const sixteen = configFromArgs(['serve'], { SLIPWAY_COORDINATOR_TOKEN: 'x', SLIPWAY_API_TOKEN: 'sixteen-chars-ok' });
  t.same(sixteen !== 'help' && sixteen.apiTokens, ['sixteen-chars-ok'], '16 characters is enough');
});

t.test("an API token equal to the agents' token: CONFIG_INVALID", async (t) => {
  const shared = 'one-token-for-everything-012345';
  t.throws(() => configFromArgs(['serve'], { SLIPWAY_COORDINATOR_TOKEN: shared, SLIPWAY_API_TOKEN: shared }), { code: 'CONFIG_INVALID', message: /agents' token/ });
  const dir = t.testdir({ token: `${shared}\n`, 'api-tokens': `${API_TOKEN}\n${shared}\n` });
  t.throws(() => configFromArgs(['serve', '--token-file', join(dir, 'token'), '--api-token-file', join(dir, 'api-tokens')], {}), { code: 'CONFIG_INVALID', message: /agents' token/ }, 'any one of the API tokens');
});

t.test('--help needs no token', async (t) => {
  t.equal(configFromArgs(['--help'], {}), 'help');
  t.equal(configFromArgs(['serve', '--help'], {}), 'help');
});

t.test('--sizes-file replaces the size table after validation', async (t) => {
  const dir = tempDir(t);
  const good = join(dir, 'sizes.json');
  writeFileSync(good, JSON.stringify({ tiny: { name: 'tiny', memoryMb: 64, cpuShares: 128, pidsLimit: 64 } }));
  const config = configFromArgs(['serve', '--sizes-file', good], TOKENS);
  t.same(config !== 'help' && Object.keys(config.sizes), ['tiny']);
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, JSON.stringify({ tiny: { name: 'other', memoryMb: 64, cpuShares: 128, pidsLimit: 64 } }));
  t.throws(() => configFromArgs(['serve', '--sizes-file', bad], TOKENS), { code: 'CONFIG_INVALID' });
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
  const env = TOKENS;
  const config = configFromArgs(['serve', '--tls-cert', pem('cert'), '--tls-key', pem('key'), '--tls-client-ca', pem('ca')], env);
  t.match(config, { tls: { cert: /BEGIN CERT/, key: /BEGIN KEY/, clientCa: /BEGIN CA/ } });
  t.notOk((configFromArgs(['serve'], env) as { tls?: unknown }).tls, 'plain by default');
  t.throws(() => configFromArgs(['serve', '--tls-cert', pem('cert')], env), { code: 'CONFIG_INVALID', message: /go together/ });
  t.throws(() => configFromArgs(['serve', '--tls-client-ca', pem('ca')], env), { code: 'CONFIG_INVALID', message: /needs --tls-cert/ });
  writeFileSync(join(dir, 'junk'), 'not a certificate');
  t.throws(() => configFromArgs(['serve', '--tls-cert', join(dir, 'junk'), '--tls-key', pem('key')], env), { code: 'CONFIG_INVALID', message: /no PEM/ });
});
