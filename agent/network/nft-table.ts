// The one writer of the agent's nftables table (ruleset.ts says what is in it). Every write goes
// through one queue, so two writes never race; route changes asked for while a write is under
// way are coalesced into the next nft transaction, so that a mass teardown (a drain, a crash
// loop, 100 dynos stopped at once) costs one nft process, not one each. The routes it was told
// about are also kept here, so that a table someone flushed (a firewall reload) is put back
// with them (ensure()).
import type { Logger } from '../../shared/log.js';
import type { NetCommands } from './commands.js';
import { buildRuleset, MAP_NAME, type RulesetSettings } from './ruleset.js';

type Op = { port: number; address: string | undefined };

const asError = (e: unknown): Error => (e instanceof Error ? e : new Error(String(e)));

export class NftTable {
  private readonly routes = new Map<number, string>();
  private pending: { op: Op; done: (err?: unknown) => void }[] = [];
  private queue: Promise<void> = Promise.resolve();
  private flushing = false;

  constructor(private readonly settings: RulesetSettings, private readonly cmd: NetCommands, private readonly log: Logger) {}

  /** The routes as this process knows them (port -> dyno address). */
  get known(): ReadonlyMap<number, string> {
    return this.routes;
  }

  /** Replaces the table with its current definition and `routes` (start, reboot, flush). */
  apply(routes: ReadonlyMap<number, string>): Promise<void> {
    return this.serial(async () => {
      await this.cmd.nft(buildRuleset(this.settings, routes));
      this.routes.clear();
      for (const [p, a] of routes) this.routes.set(p, a);
    });
  }

  /** The routes in the kernel's table; empty when the table is not there. */
  async kernelRoutes(): Promise<Map<number, string>> {
    const out = new Map<number, string>();
    let json: unknown;
    try {
      json = await this.cmd.nftJson(['list', 'map', 'inet', this.settings.table, MAP_NAME]);
    } catch {
      return out;
    }
    for (const item of (json as { nftables?: { map?: { elem?: unknown[] } }[] }).nftables ?? []) {
      for (const e of item.map?.elem ?? []) {
        if (Array.isArray(e) && typeof e[0] === 'number' && typeof e[1] === 'string') out.set(e[0], e[1]);
      }
    }
    return out;
  }

  /** Puts the table back (with the known routes) if it is gone; true when it had to. */
  async ensure(): Promise<boolean> {
    try {
      await this.cmd.nftJson(['list', 'table', 'inet', this.settings.table]);
      return false;
    } catch {
      this.log.warn({ table: this.settings.table }, 'the nftables table is not there; applying it');
      await this.apply(new Map(this.routes));
      return true;
    }
  }

  route(port: number, address: string): Promise<void> {
    return this.change({ port, address });
  }

  unroute(port: number): Promise<void> {
    return this.change({ port, address: undefined });
  }

  /** Deletes the table (the cleanup command, tests). */
  remove(): Promise<void> {
    return this.serial(async () => {
      await this.cmd.nft(`table inet ${this.settings.table}\ndelete table inet ${this.settings.table}\n`);
      this.routes.clear();
    });
  }

  private change(op: Op): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ op, done: (err) => (err === undefined ? resolve() : reject(asError(err))) });
      if (!this.flushing) {
        this.flushing = true;
        void this.serial(() => this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    this.flushing = false;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    // The last word on each port wins; a delete of a route the kernel does not have would
    // abort the whole transaction, so only ports the table holds are deleted.
    const last = new Map<number, string | undefined>();
    for (const { op } of batch) last.set(op.port, op.address);
    const lines: string[] = [];
    for (const [port, address] of last) {
      if (this.routes.has(port)) lines.push(`delete element inet ${this.settings.table} ${MAP_NAME} { ${port} }`);
      if (address !== undefined) lines.push(`add element inet ${this.settings.table} ${MAP_NAME} { ${port} : ${address} }`);
    }
    let err: unknown;
    if (lines.length > 0) {
      try {
        await this.cmd.nft(lines.join('\n') + '\n');
      } catch (e) {
        // The kernel's map and ours disagree (someone edited the table): rebuild it whole.
        this.log.warn({ err: e }, 'nftables route update failed; applying the table again');
        const next = new Map(this.routes);
        for (const [port, address] of last) if (address === undefined) next.delete(port); else next.set(port, address);
        try {
          await this.cmd.nft(buildRuleset(this.settings, next));
        } catch (e2) {
          err = e2;
        }
      }
    }
    if (err === undefined) for (const [port, address] of last) if (address === undefined) this.routes.delete(port); else this.routes.set(port, address);
    for (const b of batch) b.done(err);
  }

  private serial(step: () => Promise<void>): Promise<void> {
    const next = this.queue.then(step);
    this.queue = next.catch(() => undefined);
    return next;
  }
}
