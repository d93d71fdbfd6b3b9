// The dyno's output in its log stream (log-shipper.ts): each container's log file is followed
// from its start (from its end for a container re-adopted after an agent restart: what it wrote
// meanwhile stays in the file and in `/v1/dynos/:id/logs`, but is not shipped late), read to
// its end before the container and its file are removed, and the dyno is let go of once down.
// Log shipping is best effort: a failure here is logged and never fails the dyno.
import type { RuntimeDriver } from '../runtime/driver.js';
import type { LogShipper } from './log-shipper.js';
import type { ContainerRun, DynoControl, DynoHook } from './hooks.js';

export type DynoLogs = Pick<LogShipper, 'attach' | 'system' | 'flush' | 'detach'>;

export class LogsHook implements DynoHook {
  readonly name = 'logs';

  constructor(
    private readonly dyno: Pick<DynoControl, 'spec' | 'log'>,
    private readonly driver: Pick<RuntimeDriver, 'log'>,
    private readonly logs: DynoLogs,
  ) {}

  private get ident(): { dynoId: string; app: string; name: string } {
    const { id, app, name } = this.dyno.spec;
    return { dynoId: id, app, name };
  }

  async poststart(run: ContainerRun): Promise<void> {
    if (!run.handle) return;
    await this.logs.attach(this.ident, this.driver.log(run.handle), run.adopted)
      .catch((err: unknown) => this.dyno.log.error({ err }, "could not follow the dyno's log; its output is not shipped"));
  }

  async predestroy(): Promise<void> {
    await this.logs.flush(this.dyno.spec.id).catch(() => undefined);
  }

  entered(to: string): void {
    if (to === 'down') void this.logs.detach(this.dyno.spec.id).catch(() => undefined);
  }
}
