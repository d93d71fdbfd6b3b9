// `slipway-agent slug fetch --signature FILE` as an operator runs it: the built executable, a
// config file with requireSignedSlugs and slugPublicKeys, slugs signed by the real minisign,
// served by a real HTTP server; exit codes and the first word of stderr.
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer } from '../slugs/fixtures/server.js';
import { GOOD_ENTRIES, sha256, tgz } from '../slugs/fixtures/tarball.js';
import { minisign } from '../slugs/fixtures/minisign.js';

const MAIN = path.resolve(import.meta.dirname, '../../../../dist/agent/main.js');
const good = tgz(GOOD_ENTRIES);
const goodSha = sha256(good);
const ms = minisign(t);
const signer = ms.keyPair('signer');
const stranger = ms.keyPair('stranger');
const goodSig = path.join(ms.dir, 'good.minisig');
writeFileSync(goodSig, ms.sign(signer, 'good.tgz', good));
const strangerSig = path.join(ms.dir, 'stranger.minisig');
writeFileSync(strangerSig, ms.sign(stranger, 'good.tgz', good));

// Asynchronous on purpose: the HTTP server serving the slugs runs in this process.
function slug(stateDir: string, ...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, 'slug', ...args, '--state-dir', stateDir], { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
    });
  });
}

function stateWithConfig(t: { teardown(fn: () => void): void }, config: Record<string, unknown>): { state: string; config: string } {
  const state = mkdtempSync(path.join(tmpdir(), 'slipway-cli-signed-'));
  t.teardown(() => rmSync(state, { recursive: true, force: true }));
  const file = path.join(state, 'agent.json');
  writeFileSync(file, JSON.stringify(config));
  return { state, config: file };
}

t.test('with requireSignedSlugs: a signed slug is fetched, an unsigned or foreign one refused', async (t) => {
  const srv = await startServer(t, { '/s.tgz': { body: good } });
  const { state, config } = stateWithConfig(t, { requireSignedSlugs: true, slugPublicKeys: [stranger.publicKey, signer.publicKey] });
  const url = `${srv.base}/s.tgz`;

  const unsigned = await slug(state, 'fetch', url, '--sha256', goodSha, '--config', config);
  t.equal(unsigned.code, 1);
  t.match(unsigned.stderr, /^SLUG_UNSIGNED: /);

  const foreign = stateWithConfig(t, { requireSignedSlugs: true, slugPublicKeys: [signer.publicKey] });
  const refused = await slug(foreign.state, 'fetch', url, '--sha256', goodSha, '--signature', strangerSig, '--config', foreign.config);
  t.equal(refused.code, 1);
  t.match(refused.stderr, new RegExp(`^SLUG_SIGNATURE_INVALID: .*key ${stranger.id}, which is not trusted`));
  t.equal(srv.count('/s.tgz'), 0, 'both refused before any download');
  t.same(readdirSync(path.join(state, 'slugs')), [], 'nothing of the slug in the cache');

  const ok = await slug(state, 'fetch', url, '--sha256', goodSha, '--signature', goodSig, '--config', config);
  t.equal(ok.code, 0, ok.stderr);
  t.match(JSON.parse(ok.stdout), { sha256: goodSha, cached: false });
  const again = await slug(state, 'fetch', url, '--sha256', goodSha, '--signature', goodSig, '--config', config);
  t.match(JSON.parse(again.stdout), { sha256: goodSha, cached: true }, 'a cache hit in a new process is verified');
  t.equal(srv.count('/s.tgz'), 1, 'against the digest kept in the slug metadata: no second download');
});

t.test('a signature over other bytes is refused', async (t) => {
  const other = tgz([{ path: './app/', type: 'Directory' }, { path: './app/x', body: 'x' }]);
  const srv = await startServer(t, { '/other.tgz': { body: other } });
  const { state, config } = stateWithConfig(t, { slugPublicKeys: [signer.publicKey] });
  const r = await slug(state, 'fetch', `${srv.base}/other.tgz`, '--signature', goodSig, '--config', config);
  t.equal(r.code, 1);
  t.match(r.stderr, /^SLUG_SIGNATURE_INVALID: .*does not verify over the slug's bytes/);
  t.same(readdirSync(path.join(state, 'slugs')), []);
});

t.test('operator mistakes: an unreadable --signature or a bad key is CONFIG_INVALID (exit 2)', async (t) => {
  const { state, config } = stateWithConfig(t, { requireSignedSlugs: true, slugPublicKeys: [signer.publicKey] });
  const missing = await slug(state, 'fetch', 'http://127.0.0.1:1/s.tgz', '--signature', path.join(state, 'nope.minisig'), '--config', config);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /^CONFIG_INVALID: --signature .*nope\.minisig/);
  const badKey = stateWithConfig(t, { slugPublicKeys: ['RW' + 'A'.repeat(54)] });
  const r = await slug(badKey.state, 'ls', '--config', badKey.config);
  t.equal(r.code, 2);
  t.match(r.stderr, /^CONFIG_INVALID: slugPublicKeys\/0: /);
  const noKeys = stateWithConfig(t, { requireSignedSlugs: true });
  t.match(await slug(noKeys.state, 'ls', '--config', noKeys.config), { code: 2, stderr: /^CONFIG_INVALID: requireSignedSlugs is true but slugPublicKeys is empty/ });
});

t.test('without keys, --signature is not checked and the operator is told', async (t) => {
  const srv = await startServer(t, { '/s.tgz': { body: good } });
  const { state, config } = stateWithConfig(t, {});
  const r = await slug(state, 'fetch', `${srv.base}/s.tgz`, '--signature', strangerSig, '--config', config);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /slugPublicKeys is empty, so --signature is not checked/);
});
