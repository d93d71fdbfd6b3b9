// Helpers for tests against the real Docker engine: what the engine holds for a test (for the
// leftover checks and cleanup), and a unix-socket proxy in front of the engine that a test can
// cut, to play a dropped connection or a dockerd restart without touching the shared engine.
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';

function docker(args: string[]): string {
  return execFileSync('docker', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Ids of the containers (any state) labelled as the given dyno's. */
export function dockerContainersOf(dynoId: string): string[] {
  return docker(['ps', '-aq', '--no-trunc', '--filter', `label=slipway.dyno=${dynoId}`]).split('\n').filter(Boolean);
}

/** Force-removes every container whose name starts with `prefix`; for teardown. */
export function removeDockerContainersNamed(prefix: string): void {
  const ids = docker(['ps', '-aq', '--filter', `name=^/${prefix}`]).split('\n').filter(Boolean);
  if (ids.length) docker(['rm', '-f', '-v', ...ids]);
}

/** Removes an image tag a test created (the image goes with its last tag); absent is fine. */
export function removeDockerImage(ref: string): void {
  try { docker(['rmi', ref]); } catch { /* already gone */ }
}

export function dockerImageExists(ref: string): boolean {
  try {
    docker(['image', 'inspect', ref]);
    return true;
  } catch {
    return false;
  }
}

/** A proxy that forwards connections on `path` to the engine's socket until cut. */
export interface EngineProxy {
  path: string;
  /** Drops every open connection and refuses new ones (nobody listens on `path`). */
  cut(): Promise<void>;
  /** Listens again. */
  resume(): Promise<void>;
  /** How many open client connections cut() has dropped. */
  dropped: number;
  close(): Promise<void>;
}

export async function engineProxy(path: string, target = '/var/run/docker.sock'): Promise<EngineProxy> {
  const sockets = new Set<Socket>();
  const clients = new Set<Socket>();
  let server: Server | undefined;
  const listen = async () => {
    rmSync(path, { force: true });
    server = createServer((client) => {
      const upstream = createConnection(target);
      sockets.add(client);
      sockets.add(upstream);
      clients.add(client);
      const drop = () => { client.destroy(); upstream.destroy(); sockets.delete(client); sockets.delete(upstream); clients.delete(client); };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => server!.listen(path, resolve));
  };
  const stop = async () => {
    const s = server;
    server = undefined;
    const closed = s ? new Promise<void>((resolve) => s.close(() => resolve())) : Promise.resolve();
    proxy.dropped += clients.size;
    for (const sock of [...sockets]) sock.destroy();
    sockets.clear();
    clients.clear();
    await closed;
    rmSync(path, { force: true });
  };
  const proxy: EngineProxy = { path, dropped: 0, cut: stop, resume: listen, close: stop };
  await listen();
  return proxy;
}
