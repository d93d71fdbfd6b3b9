// Builds real slugs (gzipped tars rooted at ./app) and serves them over real HTTP.
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import * as tar from 'tar';

/** Writes `files` (path under app/ -> content) into a slug; returns its bytes and digest. */
export async function makeSlug(workDir: string, files: Record<string, string>): Promise<{ bytes: Buffer; sha256: string }> {
  const src = join(workDir, `slug-src-${Math.random().toString(36).slice(2)}`);
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(join(src, 'app', rel, '..'), { recursive: true });
    await writeFile(join(src, 'app', rel), content);
  }
  const out = join(src, '..', `${src.split('/').pop()}.tgz`);
  await tar.c({ gzip: true, file: out, cwd: src, portable: true }, ['./app']);
  const bytes = await readFile(out);
  return { bytes, sha256: createHash('sha256').update(bytes).digest('hex') };
}

export interface SlugServer { url(name: string): string; requests: Map<string, number>; close(): Promise<void> }

/** A real HTTP server on 127.0.0.1:0 serving named slugs and counting requests per path. */
export async function serveSlugs(slugs: Record<string, Buffer>): Promise<SlugServer> {
  const requests = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const name = (req.url ?? '/').split('?')[0]!.slice(1);
    requests.set(name, (requests.get(name) ?? 0) + 1);
    const body = slugs[name];
    if (!body) { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': body.length }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: (name) => `http://127.0.0.1:${port}/${name}`,
    requests,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
