// Heroku's boot deadline for web dynos: a web dyno is up (and routable, with its endpoint) once
// its $PORT accepts a TCP connection (readiness.ts probes); one that has not bound $PORT
// bootTimeoutMs after its container started is killed and reported crashed (R10,
// DYNO_BOOT_TIMEOUT), then restarted like any crash. A web dyno re-adopted in `starting`
// (its port did not accept when the agent came back) gets the whole timeout again from then.
// Workers have no port and no deadline: they are up once their container runs (dyno.ts).
// The deadline is a timer on the dyno's clock; the wait also ends with the container's life
// (an exit, a stop, a cycle: run.signal).
import { waitForPort } from './readiness.js';
import { reasons } from './reasons.js';
import type { ContainerRun, DynoControl, DynoHook } from './hooks.js';
import type { DecisionSink } from '../diagnostics/decisions.js';

export class BootDeadlineHook implements DynoHook {
  readonly name = 'boot-deadline';

  constructor(
    private readonly dyno: DynoControl,
    private readonly settings: { address: string; bootTimeoutMs: number },
    private readonly decisions?: DecisionSink,
  ) {}

  poststart(run: ContainerRun): void {
    if (run.port === undefined || this.dyno.current !== 'starting') return;
    void this.await(run, run.port).catch((err: unknown) => this.dyno.log.error({ err }, 'waiting for the dyno to bind $PORT failed'));
  }

  private async await(run: ContainerRun, port: number): Promise<void> {
    const { address, bootTimeoutMs } = this.settings;
    const { clock } = this.dyno;
    const deadline = new AbortController();
    const startedAt = clock.monotonic();
    const timer = clock.setTimeout(() => deadline.abort(), bootTimeoutMs);
    // Probed at the dyno's own address (its namespace's eth0); the endpoint is the host's.
    const ready = await waitForPort(run.network?.address ?? address, port, AbortSignal.any([run.signal, deadline.signal]), clock);
    clock.clearTimeout(timer);
    if (ready === 'ready') return this.dyno.ready(run, { host: address, port });
    if (!deadline.signal.aborted || !this.dyno.live(run) || this.dyno.current !== 'starting') return;
    this.dyno.log.warn({ bootTimeoutMs }, 'boot timeout (R10), killing dyno');
    if (!this.dyno.status().reason) {
      this.decisions?.about(this.dyno.spec, 'kill', `R10: $PORT ${port} not bound within ${bootTimeoutMs / 1000} s of the start; SIGKILL`, {
        cause: 'R10', code: 'DYNO_BOOT_TIMEOUT', port, bootTimeoutMs, waitedMs: Math.round(clock.monotonic() - startedAt),
      });
    }
    await this.dyno.kill(run, reasons.bootTimeout(bootTimeoutMs));
  }
}
