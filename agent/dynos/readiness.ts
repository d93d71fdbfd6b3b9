// A web dyno is routable once its $PORT accepts a TCP connection (Heroku's router cue).
// Probes every PROBE_INTERVAL_MS until the deadline or until aborted (the dyno exited or
// is being stopped). Each connect attempt is itself bounded.
import { connect } from 'node:net';

export const PROBE_INTERVAL_MS = 100;
export const PROBE_CONNECT_TIMEOUT_MS = 1_000;

export function probeOnce(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(PROBE_CONNECT_TIMEOUT_MS, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/** 'ready', 'timeout' or 'aborted'. */
export async function waitForPort(
  host: string,
  port: number,
  deadlineMs: number,
  signal: AbortSignal,
): Promise<'ready' | 'timeout' | 'aborted'> {
  const end = Date.now() + deadlineMs;
  while (!signal.aborted) {
    if (await probeOnce(host, port)) return 'ready';
    if (Date.now() >= end) return 'timeout';
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, Math.min(PROBE_INTERVAL_MS, Math.max(0, end - Date.now())));
      signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
    });
  }
  return 'aborted';
}
