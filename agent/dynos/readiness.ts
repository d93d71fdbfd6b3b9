// A web dyno is routable once its $PORT accepts a TCP connection (Heroku's router cue).
// waitForPort probes every PROBE_INTERVAL_MS until the port accepts or the wait is aborted (the
// dyno exited, is being stopped, or its boot deadline passed: boot-deadline-hook.ts owns R10).
// Each connect attempt is itself bounded. The connect is real; the pauses between attempts are
// on the dyno's clock (clock.ts).
import { connect } from 'node:net';
import { pause, realClock, type Clock } from '../lib/clock.js';

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

/** 'ready' once the port accepts, 'aborted' when `signal` ends the wait first. */
export async function waitForPort(host: string, port: number, signal: AbortSignal, clock: Clock = realClock): Promise<'ready' | 'aborted'> {
  while (!signal.aborted) {
    if (await probeOnce(host, port)) return signal.aborted ? 'aborted' : 'ready';
    await pause(clock, PROBE_INTERVAL_MS, signal);
  }
  return 'aborted';
}
