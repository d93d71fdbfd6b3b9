// Waiting for a dyno's container to exit, and reading how it exited.
//
// The wait is the engine's long poll (POST /containers/{id}/wait?condition=not-running) and is
// deliberately unbounded: a dyno runs up to a day between cycles. The poll is only the cue; the
// exit itself is always read from inspect (bounded), which is the engine's record and survives
// both a dropped connection and a dockerd restart. A heartbeat inspect runs beside the poll,
// and when the engine is away the waiter re-inspects with backoff, then arms a new poll: it
// neither hangs on a dead socket nor fails the dyno.
//
// OOM: State.OOMKilled is set by dockerd from containerd's TaskOOM event, which containerd
// raises from the cgroup's own OOM notification (v1: an eventfd on memory.oom_control; v2:
// memory.events `oom_kill`). It covers every process of the container, not only pid 1
// (checked here: a child killed by the OOM killer while pid 1 exits 0 reports true), and an
// outside `docker kill -s KILL` reports false. The cgroup itself is gone once the container
// has exited, so the engine's flag is the record of the counter.
import type Docker from 'dockerode';
import type { Logger } from '../../../shared/log.js';
import type { DynoExit } from '../driver.js';
import { signalFromExitCode } from '../common.js';
import { httpStatus, inspectContainer, isUnreachable } from './engine.js';

/** First retry after a failed call, doubled up to the cap: a dockerd restart takes seconds,
 * and the cap keeps a long outage at one attempt per 5 s per dyno. */
export const WAIT_RETRY_INITIAL_MS = 250;
export const WAIT_RETRY_MAX_MS = 5_000;
/** How often the waiter inspects while the long poll is quiet. docker-modem never notices a
 * connection that drops after the poll's response headers arrived (dockerd sends them at
 * once), so the poll alone could hang forever; the heartbeat bounds how late an exit is seen
 * then. One ~2 ms inspect per dyno per 5 s. */
export const WAIT_HEARTBEAT_MS = 5_000;

/** The exit of a container that vanished (removed behind the agent's back): unknown. */
export const UNKNOWN_EXIT: DynoExit = { code: null, signal: null, oomKilled: false };

type State = Docker.ContainerInspectInfo['State'];

export function exitFromState(state: State): DynoExit {
  const code = state.ExitCode;
  // A start failure (State.Error, e.g. "exec: not found", codes 126/127) is not a signal.
  const signal = state.Error ? null : signalFromExitCode(code);
  return { code, signal, oomKilled: state.OOMKilled === true };
}

export interface WaitOptions {
  /** Outages are logged here, once each. */
  log: Logger;
  heartbeatMs?: number;
}

type Wake = 'returned' | 'failed' | 'gone' | 'tick';

export async function waitForExit(docker: Docker, containerId: string, o: WaitOptions): Promise<DynoExit> {
  const heartbeatMs = o.heartbeatMs ?? WAIT_HEARTBEAT_MS;
  let delay = WAIT_RETRY_INITIAL_MS;
  let outage = false;
  for (;;) {
    // A poll armed before an outage may sit on a dead socket: each outage gets a new one.
    const poll = new AbortController();
    const polled: Promise<Wake> = docker.getContainer(containerId).wait({ condition: 'not-running', abortSignal: poll.signal })
      .then(() => 'returned' as const, (err: unknown) => (httpStatus(err) === 404 ? 'gone' as const : 'failed' as const));
    try {
      for (;;) {
        const timer = new AbortController();
        const tick = sleep(outage ? delay : heartbeatMs, timer.signal).then(() => 'tick' as const);
        const woke = await Promise.race([polled, tick]);
        timer.abort();
        if (woke === 'gone') return UNKNOWN_EXIT;
        let info: Docker.ContainerInspectInfo | undefined;
        try {
          info = await inspectContainer(docker, containerId);
        } catch (err) {
          if (!outage) o.log.warn({ err, containerId, unreachable: isUnreachable(err) }, 'cannot inspect a waited-for dyno; retrying with backoff');
          if (outage) delay = Math.min(delay * 2, WAIT_RETRY_MAX_MS);
          outage = true;
          continue;
        }
        if (!info) return UNKNOWN_EXIT;
        if (!info.State.Running && !info.State.Restarting) return exitFromState(info.State);
        if (outage) {
          o.log.info({ containerId }, 'Docker engine answers again; the dyno still runs');
          outage = false;
          delay = WAIT_RETRY_INITIAL_MS;
          break;
        }
        if (woke === 'tick') continue;
        // The poll ended while the dyno runs (a failed call, or a restart): a pause, then a new one.
        await sleep(delay);
        delay = woke === 'failed' ? Math.min(delay * 2, WAIT_RETRY_MAX_MS) : WAIT_RETRY_INITIAL_MS;
        break;
      }
    } finally {
      poll.abort();
    }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}
