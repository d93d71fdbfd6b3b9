// Calls into the Docker engine, each with a named time bound, and the mapping of what goes
// wrong onto slipway's codes: engine not reachable = RUNTIME_UNAVAILABLE, out of time =
// RUNTIME_TIMEOUT, anything else the engine says = RUNTIME_FAILED (the HTTP status stays on
// the cause; httpStatus() reads it).
//
// The bounds follow amazon-ecs-agent's dockerclient timeouts where a call is the same, and
// are tighter where ours cannot do the slow thing ECS's may (pull an image, call a volume
// plugin). Measured on this machine (Debian 12, docker.io 20.10.24): a whole start() (leftover
// check, create, start, inspect) takes 150-210 ms, a destroy of an exited dyno ~20 ms.
import { request } from 'node:http';
import type { Duplex } from 'node:stream';
import Docker from 'dockerode';
import { SlipwayError } from '../../../shared/errors.js';

/** The API version slipway speaks: docker.io 20.10 (Debian 12) serves 1.41, newer engines
 * still accept it, and MaskedPaths, ReadonlyPaths and wait conditions are all there. */
export const DOCKER_API_VERSION = 'v1.41';
export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';

/** ECS's InspectContainerTimeout. */
export const INSPECT_TIMEOUT_MS = 30_000;
/** ECS allows 4 min because its create may wait on a volume plugin; ours has no volumes and
 * no pulls, so 60 s (Heroku's whole boot budget) only trips on a wedged engine. */
export const CREATE_TIMEOUT_MS = 60_000;
/** ECS allows 3 min; a start is runc create + start through containerd's shim (well under
 * the 150-210 ms of a whole start() here). */
export const START_TIMEOUT_MS = 60_000;
/** An attach answers as soon as the engine has hooked the container's streams up (a few ms);
 * the inspect bound. */
export const ATTACH_TIMEOUT_MS = 30_000;
/** A resize is one ioctl through containerd's shim, like a kill. */
export const RESIZE_TIMEOUT_MS = 10_000;
/** A kill is one signal through containerd; like RUNC_CALL_TIMEOUT_MS, 10 s = wedged. */
export const KILL_TIMEOUT_MS = 10_000;
/** ECS allows 5 min for a remove, which deletes the container's writable layer; a dyno's
 * ephemeral writes are small, and 2 min still deletes GBs on a slow EBS volume. */
export const REMOVE_TIMEOUT_MS = 120_000;
/** ECS allows 10 min for a list, which may page through thousands of tasks' containers; a
 * host's pause containers are one per dyno (a few hundred at most), answered in milliseconds,
 * so the inspect bound. */
export const LIST_TIMEOUT_MS = 30_000;
/** ECS's VersionTimeout, for a ping or an image inspect. */
export const PING_TIMEOUT_MS = 10_000;
/** ECS's (older) LoadImageTimeout: a stack is ~1 GB unpacked (heroku-24); importing it is one
 * sequential write of that, plus its tar, on the host's disk. */
export const IMPORT_TIMEOUT_MS = 10 * 60_000;

/** Connection failures: no socket, nobody listening, or the engine went away mid-call. */
const UNREACHABLE = new Set(['ENOENT', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'EACCES', 'ENOTCONN', 'ECONNABORTED']);

export function createEngineClient(socketPath = DEFAULT_DOCKER_SOCKET): Docker {
  return new Docker({ socketPath, version: DOCKER_API_VERSION });
}

/** The engine's HTTP status behind an error (docker-modem puts it on the error), if any. */
export function httpStatus(err: unknown): number | undefined {
  for (let e = err; e && typeof e === 'object'; e = (e as { cause?: unknown }).cause) {
    const status = (e as { statusCode?: unknown }).statusCode;
    if (typeof status === 'number') return status;
  }
  return undefined;
}

export function isUnreachable(err: unknown): boolean {
  for (let e = err; e && typeof e === 'object'; e = (e as { cause?: unknown }).cause) {
    if (e instanceof SlipwayError && e.code === 'RUNTIME_UNAVAILABLE') return true;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && UNREACHABLE.has(code)) return true;
  }
  return false;
}

export function engineError(what: string, err: unknown): SlipwayError {
  if (err instanceof SlipwayError) return err;
  const message = err instanceof Error ? err.message.trim() : String(err);
  if (isUnreachable(err)) return new SlipwayError('RUNTIME_UNAVAILABLE', `Docker engine not reachable (${what}): ${message}`, { cause: err });
  return new SlipwayError('RUNTIME_FAILED', `Docker ${what}: ${message.slice(0, 500)}`, { cause: err });
}

/**
 * Runs one engine call within `timeoutMs`. The call gets an AbortSignal that fires on the
 * deadline (dockerode passes it to the HTTP request, which frees the socket); the race makes
 * the bound hold even if a call ignored it.
 */
export async function engineCall<T>(what: string, timeoutMs: number, call: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new SlipwayError('RUNTIME_TIMEOUT', `Docker ${what} did not answer within ${timeoutMs} ms`));
      ac.abort();
    }, timeoutMs);
  });
  try {
    return await Promise.race([call(ac.signal), deadline]);
  } catch (err) {
    throw engineError(what, err);
  } finally {
    clearTimeout(timer);
  }
}

/** Like engineCall, but a 404 (no such container or image) is undefined instead of an error. */
export async function engineLookup<T>(what: string, timeoutMs: number, call: (signal: AbortSignal) => Promise<T>): Promise<T | undefined> {
  try {
    return await engineCall(what, timeoutMs, call);
  } catch (err) {
    if (httpStatus(err) === 404) return undefined;
    throw err;
  }
}

/** Inspects a container by id or name; undefined when there is no such container. */
export function inspectContainer(docker: Docker, idOrName: string): Promise<Docker.ContainerInspectInfo | undefined> {
  return engineLookup(`inspect ${idOrName}`, INSPECT_TIMEOUT_MS, (abortSignal) => docker.getContainer(idOrName).inspect({ abortSignal }));
}

/** Poll period while another caller's removal of the same container finishes. */
const REMOVAL_POLL_MS = 100;

/** Removes a container with its anonymous volumes, running or not; resolves once it is gone.
 * A missing container is fine. */
export async function removeContainer(docker: Docker, idOrName: string): Promise<void> {
  try {
    await engineCall(`remove ${idOrName}`, REMOVE_TIMEOUT_MS, (abortSignal) =>
      docker.getContainer(idOrName).remove({ force: true, v: true, abortSignal } as Docker.ContainerRemoveOptions));
    return;
  } catch (err) {
    const status = httpStatus(err);
    if (status === 404) return;
    // 409 "removal already in progress": another caller is removing it; wait for that.
    if (status !== 409 || !/in progress/i.test(String((err as Error).message))) throw err;
  }
  // Monotonic: an NTP step must neither end the wait at once nor stretch it (clock.ts).
  const deadline = performance.now() + REMOVE_TIMEOUT_MS;
  while (performance.now() < deadline) {
    if (!(await inspectContainer(docker, idOrName))) return;
    await new Promise((r) => setTimeout(r, REMOVAL_POLL_MS));
  }
  throw new SlipwayError('RUNTIME_TIMEOUT', `Docker remove ${idOrName}: still there after ${REMOVE_TIMEOUT_MS} ms`);
}

/**
 * POST /containers/{id}/attach, upgraded to the raw connection (what `docker run -i` does).
 * Made here rather than through dockerode: with stdin its modem neither sends a body nor ends
 * the request, so the request's headers are never flushed and the engine never answers
 * (dockerode#819); and a body it did send would reach the container as its first stdin bytes
 * (dockerode#777). This request has no body (Content-Length: 0), the engine answers 101 and
 * from there the socket is the container's stdio.
 */
export function hijackAttach(socketPath: string, containerId: string, stdin: boolean, signal: AbortSignal): Promise<Duplex> {
  const query = `stream=1&stdin=${stdin ? 1 : 0}&stdout=1&stderr=1`;
  return new Promise((resolve, reject) => {
    const req = request({
      socketPath, method: 'POST', path: `/${DOCKER_API_VERSION}/containers/${encodeURIComponent(containerId)}/attach?${query}`,
      headers: { Connection: 'Upgrade', Upgrade: 'tcp', 'Content-Length': '0' }, signal,
    });
    req.on('upgrade', (_res, socket, head) => {
      if (head.length > 0) socket.unshift(head);
      resolve(socket);
    });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (b: Buffer) => { if (body.length < 2_000) body += b.toString('utf8'); });
      res.on('end', () => reject(Object.assign(new Error(`attach answered ${res.statusCode ?? '?'}: ${body.trim().slice(0, 300)}`), { statusCode: res.statusCode })));
    });
    req.on('error', reject);
    req.end();
  });
}
