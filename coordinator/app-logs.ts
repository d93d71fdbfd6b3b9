// The reference coordinator's log view: the last lines of each app, as its agents shipped
// them (`logs` batches), for `GET /apps/:app/logs`. In memory and bounded (1,500 lines per
// app, Heroku's `logs --num` maximum); a real platform would fan them out to drains. Lines an
// agent reports dropped (its queue was full) are counted per agent and shown by /healthz.
export const APP_LOG_LINES = 1_500;

export class AppLogs {
  private readonly apps = new Map<string, string[]>();
  private readonly droppedByAgent = new Map<string, number>();

  constructor(private readonly keep = APP_LOG_LINES) {}

  add(agentId: string, lines: { app: string; line: string }[], dropped: number): void {
    for (const { app, line } of lines) {
      let ring = this.apps.get(app);
      if (!ring) this.apps.set(app, (ring = []));
      ring.push(line);
      if (ring.length > this.keep) ring.splice(0, ring.length - this.keep);
    }
    if (dropped > 0) this.droppedByAgent.set(agentId, (this.droppedByAgent.get(agentId) ?? 0) + dropped);
  }

  /** The app's last `n` lines, oldest first (each agent's lines in its own order). */
  tail(app: string, n = 100): string[] {
    return (this.apps.get(app) ?? []).slice(-Math.max(0, Math.min(n, this.keep)));
  }

  dropped(): Record<string, number> {
    return Object.fromEntries(this.droppedByAgent);
  }
}
