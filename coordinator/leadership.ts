// Who leads among the coordinators that share a store: a campaign loop around the store's
// LeaderLock. A follower tries the lock every retryMs; once it holds it, it claims the next
// epoch, loads the store and starts a term (onElected). The term ends when the lock is lost
// (its dedicated connection died: PostgreSQL ended the session, e.g. after this process was
// stopped for longer than idle_session_timeout), when a write was fenced (another leader
// claimed a higher epoch), or at close(); the loop then campaigns again.
//
// The in-memory store's lock is always free: a single coordinator is elected at once.
import type { Logger } from '../shared/log.js';
import { asSlipwayError } from '../shared/errors.js';
import type { CoordinatorStore, LeaderLock } from './store/store.js';

export interface LeadershipOptions {
  store: CoordinatorStore;
  coordinatorId: string;
  log: Logger;
  /** Starts a term with the claimed epoch; resolves once the term serves. */
  onElected: (epoch: number) => Promise<void>;
  /** Ends the current term (closes its agent links); resolves once it did. */
  onDeposed: (reason: string) => Promise<void>;
  /** How often a follower tries the lock (default 250 ms: the takeover delay after a leader's
   * session ends). */
  retryMs?: number;
}

export type Role = 'follower' | 'leader';

export class Leadership {
  private readonly lock: LeaderLock;
  private roleNow: Role = 'follower';
  private epochNow = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** The one transition running (election or deposition); transitions never overlap. */
  private transition: Promise<void> = Promise.resolve();

  constructor(private readonly o: LeadershipOptions) {
    this.lock = o.store.leaderLock();
    this.lock.onLost((reason) => this.depose(`leadership lock lost: ${reason}`));
  }

  get role(): Role {
    return this.roleNow;
  }

  get epoch(): number {
    return this.epochNow;
  }

  /** Campaigns at once and then every retryMs while a follower. Resolves after the first try
   * (elected or not). */
  async start(): Promise<void> {
    await this.tryOnce();
  }

  /** The term's writes were fenced: another coordinator leads. */
  fenced(): void {
    this.depose('fenced: another coordinator claimed a higher epoch');
  }

  private depose(reason: string): void {
    this.transition = this.transition.then(async () => {
      if (this.roleNow !== 'leader') return;
      this.roleNow = 'follower';
      this.o.log.warn({ epoch: this.epochNow, reason }, 'leadership lost; following');
      await this.o.onDeposed(reason).catch((err: unknown) => this.o.log.error({ err }, 'ending the leadership term failed'));
      await this.lock.release().catch(() => undefined);
      this.scheduleTry();
    });
  }

  private tryOnce(): Promise<void> {
    this.transition = this.transition.then(async () => {
      if (this.closed || this.roleNow === 'leader') return;
      try {
        if (!(await this.lock.tryAcquire())) return this.scheduleTry();
        const epoch = await this.o.store.claimEpoch(this.o.coordinatorId);
        this.epochNow = epoch;
        this.roleNow = 'leader';
        this.o.log.info({ epoch, coordinatorId: this.o.coordinatorId }, 'elected leader');
        await this.o.onElected(epoch);
      } catch (err) {
        const e = asSlipwayError(err);
        this.o.log.warn({ err: e }, 'campaign failed; trying again');
        if (this.roleNow === 'leader') {
          this.roleNow = 'follower';
          await this.o.onDeposed(`term failed to start: ${e.message}`).catch(() => undefined);
        }
        await this.lock.release().catch(() => undefined);
        this.scheduleTry();
      }
    });
    return this.transition;
  }

  private scheduleTry(): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.tryOnce();
    }, this.o.retryMs ?? 250);
  }

  /** Stops campaigning; ends a term; gives the lock up (a follower takes over at once). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.transition;
    if (this.roleNow === 'leader') {
      this.roleNow = 'follower';
      await this.o.onDeposed('shutting down');
    }
    await this.lock.release().catch(() => undefined);
  }
}
