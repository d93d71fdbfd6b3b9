// Flags come from the schema's flag metadata: each is converted to its key's type and checked
// by the key's schema, so a bad flag is refused up front naming the flag and the field.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCommandConfig, parseCommandLine, valueFromText } from '../../../../agent/config/flags.js';
import { SERVE_FLAGS, STATUS_FLAGS } from '../../../../agent/config/commands.js';
import { DEFAULTS } from '../../../../agent/config/schema.js';

t.test('serve: every flagged key, converted to its type', async (t) => {
  const p = parseCommandLine([
    '--coordinator', 'wss://c.example/v1/agent', '--token-file', '/t', '--ca-file', '/ca.pem', '--agent-id', 'a-1', '--address', '10.0.0.5',
    '--state-dir', '/srv/s', '--cgroup-parent', '/sw', '--runtime', 'lxc', '--reserved-memory-mb', '512', '--port-range', '31000-31999',
    '--boot-timeout-ms', '1000', '--stop-grace-ms=0', '--diagnostics-listen', '127.0.0.1:0', '--stop-dynos-on-exit', '--config', '/c.json',
  ], SERVE_FLAGS);
  t.same(p.flags, {
    coordinatorUrl: 'wss://c.example/v1/agent', tokenFile: '/t', caFile: '/ca.pem', agentId: 'a-1', address: '10.0.0.5', stateDir: '/srv/s',
    cgroupParent: '/sw', runtime: 'lxc', reservedMemoryMb: 512, portRange: [31000, 31999], bootTimeoutMs: 1000, stopGraceMs: 0,
    diagnosticsListen: '127.0.0.1:0',
  });
  t.equal(p.configPath, '/c.json');
  t.equal(p.values['stop-dynos-on-exit'], true);
  t.same(parseCommandLine([], SERVE_FLAGS).flags, {}, 'no flag, no key');
});

t.test('a bad flag value is CONFIG_INVALID naming the flag and the field', async (t) => {
  const bad = (args: string[], message: RegExp) => t.throws(() => parseCommandLine(args, SERVE_FLAGS), { code: 'CONFIG_INVALID', message }, args.join(' '));
  bad(['--port-range', '1-x'], /^--port-range "1-x": expected MIN-MAX$/);
  bad(['--port-range', '20000'], /expected MIN-MAX/);
  bad(['--port-range', '0-5'], /^--port-range "0-5": portRange\/0 Expected integer to be greater or equal to 1$/);
  bad(['--reserved-memory-mb', '1.5'], /^--reserved-memory-mb "1.5": expected N$/);
  bad(['--reserved-memory-mb', '0x10'], /expected N/);
  bad(['--reserved-memory-mb=-5'], /^--reserved-memory-mb "-5": reservedMemoryMb Expected integer to be greater or equal to 0$/);
  bad(['--boot-timeout-ms', '10'], /bootTimeoutMs/);
  bad(['--runtime', 'kata'], /^--runtime "kata": runtime /);
  bad(['--coordinator', 'http://x'], /coordinatorUrl/);
  bad(['--diagnostics-listen', '0.0.0.0:7701'], /diagnosticsListen/);
  bad(['--state-dir', 'relative'], /stateDir/);
  bad(['--frobnicate'], /frobnicate/);
  bad(['--stop-grace-ms'], /stop-grace-ms/);
  bad(['stray'], /stray/);
});

t.test('operator commands: the keys they name, their own flags, operands; the file under the flags', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-flags-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'agent.json');
  writeFileSync(file, JSON.stringify({ stateDir: '/from/file', slugCacheBudgetMb: 7 }));
  const command = { keys: ['stateDir'], own: { sha256: { type: 'string' }, force: { type: 'boolean' } }, positionals: true } as const;
  const a = loadCommandConfig(['fetch', 'URL', '--sha256', 'ab', '--force', '--config', file], command);
  t.same(a.positionals, ['fetch', 'URL']);
  t.same(a.values, { sha256: 'ab', force: true }, 'own flags only');
  t.equal(a.config.stateDir, '/from/file');
  t.equal(a.config.slugCacheBudgetMb, 7);
  t.equal(a.config.bootTimeoutMs, DEFAULTS.bootTimeoutMs, 'the rest defaulted');
  t.equal(loadCommandConfig(['--config', file, '--state-dir', '/from/flag'], command).config.stateDir, '/from/flag', 'the flag wins');
  t.throws(() => loadCommandConfig(['--runtime', 'lxc'], command), { code: 'CONFIG_INVALID', message: /runtime/ }, 'a key it does not name is no flag');
  t.throws(() => loadCommandConfig(['--config', join(dir, 'missing.json')], command), { code: 'CONFIG_INVALID', message: /missing\.json/ });
  t.throws(() => parseCommandLine([], { keys: ['nofile'] }), /nofile has no flag/, 'a key without a flag is a programming error');
});

t.test('--diagnostics-listen takes a unix socket, for serve and for the on-call commands', async (t) => {
  t.same(parseCommandLine(['--diagnostics-listen', 'unix:/run/x.sock'], SERVE_FLAGS).flags, { diagnosticsListen: 'unix:/run/x.sock' });
  t.same(parseCommandLine(['--diagnostics-listen', 'unix:/run/x.sock', '--json'], STATUS_FLAGS).flags, { diagnosticsListen: 'unix:/run/x.sock' }, 'status reads the same key');
  t.throws(() => parseCommandLine(['--diagnostics-listen', 'unix:run/x.sock'], SERVE_FLAGS), { code: 'CONFIG_INVALID', message: /^--diagnostics-listen "unix:run\/x\.sock": diagnosticsListen / }, 'a relative socket path is refused');
  t.throws(() => parseCommandLine(['--diagnostics-listen', `unix:/${'x'.repeat(101)}`], SERVE_FLAGS), { code: 'CONFIG_INVALID', message: /diagnosticsListen/ }, 'so is one longer than a sun_path holds');
});

t.test('a list flag is comma-separated, each item checked by the schema', async (t) => {
  const urls = ['ws://10.0.0.1:7700/v1/agent', 'wss://c2.internal/v1/agent'];
  t.same(parseCommandLine(['--coordinator-urls', urls.join(',')], SERVE_FLAGS).flags, { coordinatorUrls: urls });
  t.same(parseCommandLine(['--coordinator-urls', ` ${urls[0]} , ${urls[1]}`], SERVE_FLAGS).flags, { coordinatorUrls: urls }, 'blanks around an item are dropped');
  t.same(parseCommandLine(['--coordinator-urls', urls[0]!], SERVE_FLAGS).flags, { coordinatorUrls: [urls[0]] }, 'a list of one');
  t.same(valueFromText('coordinatorUrls', urls.join(','), 'env SLIPWAY_COORDINATOR_URLS'), urls, 'the env takes the same text');
  const bad = (text: string, message: RegExp) => t.throws(() => parseCommandLine(['--coordinator-urls', text], SERVE_FLAGS), { code: 'CONFIG_INVALID', message }, text);
  bad(`${urls[0]},http://x`, /^--coordinator-urls "[^"]+": coordinatorUrls\/1 Expected string to match/);
  bad(`${urls[0]},`, /coordinatorUrls\/1/);
  bad(`${urls[0]},${urls[0]}`, /coordinatorUrls.*unique/);
  bad(Array.from({ length: 17 }, (_, i) => `ws://c${i}.internal/v1/agent`).join(','), /coordinatorUrls.*16/);
});

t.test('--zone: a placement zone name', async (t) => {
  t.same(parseCommandLine(['--zone', 'eu-west-1a'], SERVE_FLAGS).flags, { zone: 'eu-west-1a' });
  t.same(parseCommandLine(['--zone', 'rack_7.row-2'], SERVE_FLAGS).flags, { zone: 'rack_7.row-2' });
  t.throws(() => parseCommandLine(['--zone', 'eu west'], SERVE_FLAGS), { code: 'CONFIG_INVALID', message: /^--zone "eu west": zone / });
  t.throws(() => parseCommandLine(['--zone', 'z'.repeat(65)], SERVE_FLAGS), { code: 'CONFIG_INVALID', message: /zone/ });
});

t.test('text of other sources converts the same way', async (t) => {
  t.equal(valueFromText('logLevel', 'debug', 'env SLIPWAY_LOG_LEVEL'), 'debug');
  t.throws(() => valueFromText('logLevel', 'loud', 'env SLIPWAY_LOG_LEVEL'), { code: 'CONFIG_INVALID', message: /^env SLIPWAY_LOG_LEVEL "loud": logLevel / });
  t.throws(() => valueFromText('nofile', 'many', 'env X'), { code: 'CONFIG_INVALID', message: /expected an integer/ });
});
