// `slipway-agent slug fetch|ls|gc` as an operator runs it: the built executable, a real
// HTTP server, exit codes and the first word of stderr.
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer } from '../slugs/fixtures/server.js';
import { GOOD_ENTRIES, sha256, tgz } from '../slugs/fixtures/tarball.js';

const MAIN = path.resolve(import.meta.dirname, '../../../../dist/agent/main.js');
const good = tgz(GOOD_ENTRIES);
const goodSha = sha256(good);
const escape = tgz([{ path: './app/', type: 'Directory' }, { path: './app/../../escape', body: 'pwned' }]);

// Asynchronous on purpose: the HTTP server serving the slugs runs in this process.
function slug(stateDir: string, ...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; json: Record<string, unknown>[] }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, 'slug', ...args, '--state-dir', stateDir], { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, stdout, stderr, json: stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) });
    });
  });
}

t.test('fetch prints one JSON line; ls lists it; a second fetch is a cache hit', async (t) => {
  const state = mkdtempSync(path.join(tmpdir(), 'slipway-cli-'));
  t.teardown(() => rmSync(state, { recursive: true, force: true }));
  const srv = await startServer(t, { '/s.tgz': { body: good } });
  const r = await slug(state, 'fetch', `${srv.base}/s.tgz?X-Amz-Signature=topsecret`, '--sha256', goodSha);
  t.equal(r.code, 0, r.stderr);
  t.match(r.json, [{ sha256: goodSha, path: path.join(state, 'slugs', goodSha), bytes: Number, files: 4, cached: false }]);
  t.notMatch(r.stderr + r.stdout, /topsecret/, 'the presigned signature is never printed');
  const meta = JSON.parse(readFileSync(path.join(state, 'slugs', `${goodSha}.json`), 'utf8'));
  t.match(meta, { durable: true, bootId: readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() }, 'the CLI exits once the slug is on disk');
  const again = await slug(state, 'fetch', `${srv.base}/s.tgz`, '--sha256', goodSha);
  t.match(again.json, [{ sha256: goodSha, cached: true }]);
  t.equal(srv.count('/s.tgz'), 1);
  const ls = await slug(state, 'ls');
  t.equal(ls.code, 0);
  t.match(ls.json, [{ sha256: goodSha, inUse: false }, { entries: 1, freeBytes: Number }]);
});

t.test('a hostile slug: exit 1, stderr starts with the code, nothing left', async (t) => {
  const state = mkdtempSync(path.join(tmpdir(), 'slipway-cli-'));
  t.teardown(() => rmSync(state, { recursive: true, force: true }));
  const srv = await startServer(t, { '/evil.tgz': { body: escape }, '/s.tgz': { body: good } });
  const r = await slug(state, 'fetch', `${srv.base}/evil.tgz`, '--sha256', sha256(escape));
  t.equal(r.code, 1);
  t.match(r.stderr, /^SLUG_UNSAFE_PATH: /);
  t.equal(r.stdout, '');
  const wrong = await slug(state, 'fetch', `${srv.base}/s.tgz`, '--sha256', 'a'.repeat(64));
  t.equal(wrong.code, 1);
  t.match(wrong.stderr, /^SLUG_CHECKSUM_MISMATCH: /);
  t.match((await slug(state, 'ls')).json, [{ entries: 0, bytes: 0, budgetBytes: 20 * 1024 ** 3, freeBytes: Number }], 'the cache is empty');
});

t.test('gc honours the configured budget', async (t) => {
  const state = mkdtempSync(path.join(tmpdir(), 'slipway-cli-'));
  t.teardown(() => rmSync(state, { recursive: true, force: true }));
  const srv = await startServer(t, { '/s.tgz': { body: good } });
  t.equal((await slug(state, 'fetch', `${srv.base}/s.tgz`)).code, 0, 'fetch without --sha256 works');
  const config = path.join(state, 'agent.json');
  writeFileSync(config, JSON.stringify({ slugCacheBudgetMb: 1, slugCacheFloorMb: 0 }));
  t.same((await slug(state, 'gc', '--config', config)).json, [{ evicted: [], fits: true }], 'under a 1 MB budget nothing goes');
  writeFileSync(config, JSON.stringify({ slugCacheBudgetMb: 1, slugCacheFloorMb: 1024 * 1024 * 1024 }));
  t.same((await slug(state, 'gc', '--config', config)).json, [{ evicted: [goodSha], fits: false }], 'an unreachable floor evicts every unused slug');
  const bad = await slug(state, 'gc', '--config', path.join(state, 'missing.json'));
  t.equal(bad.code, 2);
  t.match(bad.stderr, /^CONFIG_INVALID: /);
});
