// A real PostgreSQL for tests: a fresh database per call, dropped in the test's teardown.
//
// scripts/test.sh starts one private cluster for the whole run (scripts/pg-test-server.sh) and
// exports its URL as SLIPWAY_TEST_PG_URL; a test file run on its own (npx tap FILE) starts a
// cluster of its own on a free loopback port, stopped when the process exits.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import { REPO } from './host.js';

interface TestLike {
  teardown(fn: () => unknown): void;
}

let privateServer: Promise<string> | undefined;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** The admin URL of the cluster tests use (the shared one, else a private one). */
export function testCluster(): Promise<string> {
  const shared = process.env.SLIPWAY_TEST_PG_URL;
  if (shared) return Promise.resolve(shared);
  privateServer ??= (async () => {
    const port = await freePort();
    const dir = `/tmp/slipway-pg-${process.pid}-${port}`;
    const script = join(REPO, 'scripts', 'pg-test-server.sh');
    process.once('exit', () => { spawnSync(script, ['stop', dir], { stdio: 'ignore', timeout: 40_000 }); });
    return execFileSync(script, ['start', dir, String(port)], { encoding: 'utf8', timeout: 60_000 }).trim();
  })();
  return privateServer;
}

/** A database of its own for one test: its URL. Dropped (with its sessions) in teardown. */
export async function testDatabase(t: TestLike): Promise<string> {
  const admin = await testCluster();
  const name = `slipway_t_${randomBytes(6).toString('hex')}`;
  await withClient(admin, (c) => c.query(`CREATE DATABASE ${name}`));
  t.teardown(() => withClient(admin, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)));
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Runs `fn` with a connected client of `url`, closed after. */
export async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000, query_timeout: 30_000 });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}
