// The diagnostics endpoint on a unix socket (`diagnosticsListen: "unix:PATH"`): a socket of mode
// 0600 owned by the agent's user (root on a host), answering over it with the bearer token; a
// socket file left by a crashed agent is replaced, one a live agent answers on is not, a file
// that is not a socket is never deleted, and the socket is gone when the server closes.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { lstat, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { listenDiagnostics } from '../../../../agent/diagnostics/server.js';
import { diagnosticsTarget } from '../../../../agent/start.js';
import { auth, diagnosticsServer } from './fixtures/view.js';

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'slipway-diag-sock-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A GET over the unix socket, bounded. */
function get(socketPath: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, headers, timeout: 5_000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString('utf8'); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`timeout GET ${path} on ${socketPath}`)));
    req.on('error', reject);
    req.end();
  });
}

/** What a crashed agent leaves: a process binds the socket and is SIGKILLed, so nothing unlinks it. */
async function crashedAgentSocket(path: string): Promise<void> {
  const child = spawn(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`], { stdio: 'ignore' });
  const bound = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await once(child, 'exit');
  clearTimeout(bound);
}

const errnoOf = (p: Promise<unknown>): Promise<string | undefined> => p.then(() => undefined, (err: NodeJS.ErrnoException) => err.code);

t.test('on a unix socket: a stale file replaced, mode 0600, answered with the token, a live one kept, removed on close', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'run', 'diagnostics.sock');
  await mkdir(join(dir, 'run'));
  await crashedAgentSocket(path);
  t.ok((await lstat(path)).isSocket(), 'a crashed agent left its socket file');

  const server = diagnosticsServer(t);
  const url = await listenDiagnostics(server, diagnosticsTarget(`unix:${path}`));
  t.equal(url, `unix:${path}`, 'the address clients use');
  const st = await lstat(path);
  t.ok(st.isSocket(), 'the stale file was replaced by a live socket');
  t.equal((st.mode & 0o777).toString(8), '600', 'mode 0600');
  t.equal(st.uid, process.getuid?.(), "owned by the agent's user");

  const status = await get(path, '/v1/status', auth);
  t.match({ status: status.status, body: JSON.parse(status.body) }, { status: 200, body: { agent: { id: 'agent-abuse' }, link: { state: 'ready' } } }, 'a request over the socket');
  t.equal((await get(path, '/v1/status')).status, 401, 'the token is still asked for');

  const second = diagnosticsServer(t);
  t.equal(await errnoOf(listenDiagnostics(second, { path })), 'EADDRINUSE', 'a second agent on a live socket is refused');
  t.equal((await get(path, '/healthz')).status, 200, 'and the live socket is left alone');

  await new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections(); });
  t.equal(await errnoOf(lstat(path)), 'ENOENT', 'the socket is removed on close');
});

t.test('a file at the socket path that is not a socket is never deleted', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'diagnostics.sock');
  await writeFile(path, 'an operator file\n');
  t.equal(await errnoOf(listenDiagnostics(diagnosticsServer(t), { path })), 'EEXIST');
  t.equal(await readFile(path, 'utf8'), 'an operator file\n', 'the file is intact');
});
