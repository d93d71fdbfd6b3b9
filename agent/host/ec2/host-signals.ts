// EC2's signals that this host is going away, polled from IMDSv2 (imds.ts) every `ec2.pollMs`
// (5 s: AWS's advice for the spot notice, which comes ~2 min ahead):
//
//   /latest/meta-data/spot/instance-action          {"action":"terminate"|"stop"|"hibernate","time":"...Z"}
//   /latest/meta-data/events/recommendations/rebalance  {"noticeTime":"...Z"}
//   /latest/meta-data/autoscaling/target-lifecycle-state  InService | Terminated | ...
//
// Each answers 404 while there is nothing to say. A spot notice or a `Terminated` lifecycle
// state is an interruption: `interrupted` runs (start.ts drains the manager: no new dynos) and
// stays so for the life of the process, even if the path later answers 404 (EC2 does not take
// an interruption back; a path that flaps must not re-admit dynos on a host about to vanish).
// A rebalance recommendation is reported only while the path shows it.
//
// Each distinct notice (its kind and its times) is handed to `notify` once: start.ts turns it
// into a journaled host_notice event. The keys already handed over are kept in a small state
// file, so that an agent restart during the 2 minutes neither loses a notice (the journal
// resends what the coordinator has not acknowledged) nor sends it twice.
//
// Every poll is bounded (the client's timeouts); a failing path backs off (POLL_BACKOFF_MAX_MS)
// and is logged once per streak, with its stable code (a body that is not JSON is
// IMDS_BAD_RESPONSE, never a crash).
import { readFile } from 'node:fs/promises';
import type { HostNotice } from '../../../shared/protocol.js';
import { SlipwayError } from '../../../shared/errors.js';
import type { Logger } from '../../../shared/log.js';
import { writeFileAtomic } from '../../lib/atomic-file.js';
import { Backoff } from '../../link/backoff.js';
import type { ImdsClient } from './imds.js';

export const SPOT_PATH = '/latest/meta-data/spot/instance-action';
export const REBALANCE_PATH = '/latest/meta-data/events/recommendations/rebalance';
export const LIFECYCLE_PATH = '/latest/meta-data/autoscaling/target-lifecycle-state';
export const DEFAULT_POLL_MS = 5_000;
/** A failing service is asked less often, but never less than every 20 s: with a 2 min spot
 * notice, a service that comes back must still leave the coordinator most of the window. */
export const POLL_BACKOFF_MAX_MS = 20_000;
/** Keys of notices handed over, kept across restarts; old ones are dropped past this count. */
const MAX_KEPT_KEYS = 64;

const ACTIONS = new Set(['terminate', 'stop', 'hibernate']);
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

export interface HostSignalsOptions {
  client: ImdsClient;
  log: Logger;
  pollMs?: number;
  /** `<stateDir>/agent/host-notices.json`: the keys of notices already handed over. */
  stateFile: string;
  /** A new notice; never called twice for one notice, across restarts too. */
  notify(notice: HostNotice): void;
  /** The host goes away: called once per process, at the first interruption seen. */
  interrupted(notice: HostNotice): void;
  now?: () => Date;
  random?: () => number;
}

type Source = 'spot' | 'rebalance' | 'lifecycle';

export class HostSignals {
  private interruption: HostNotice | undefined;
  private rebalance: HostNotice | undefined;
  private keys: string[] = [];
  private loaded = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly failing = new Map<Source, string>();
  private readonly backoff: Backoff;
  private readonly pollMs: number;
  private readonly now: () => Date;

  constructor(private readonly o: HostSignalsOptions) {
    this.pollMs = o.pollMs ?? DEFAULT_POLL_MS;
    this.now = o.now ?? (() => new Date());
    this.backoff = new Backoff(this.pollMs, Math.max(this.pollMs, POLL_BACKOFF_MAX_MS), o.random);
  }

  /** What EC2 says of the host now (the capacity report's `notices`). */
  notices(): HostNotice[] {
    return [this.interruption, this.rebalance].filter((n): n is HostNotice => n !== undefined);
  }

  get interrupting(): boolean {
    return this.interruption !== undefined;
  }

  /** Polls at once, then every pollMs (backed off while a path fails). */
  start(): void {
    this.stopped = false;
    const loop = async () => {
      const ok = await this.poll();
      if (this.stopped) return;
      if (ok) this.backoff.reset();
      this.timer = setTimeout(() => void loop(), ok ? this.pollMs : this.backoff.next());
      this.timer.unref();
    };
    void loop();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** One round over the three paths, in parallel. Returns whether every path answered. Never throws. */
  async poll(): Promise<boolean> {
    if (!this.loaded) await this.loadKeys();
    const [spot, rebalance, lifecycle] = await Promise.all([
      this.read('spot', () => this.spot()),
      this.read('rebalance', () => this.rebalanceNotice()),
      this.read('lifecycle', () => this.lifecycle()),
    ]);
    const seenAt = this.now().toISOString();
    const fresh: HostNotice[] = [];
    for (const found of [spot, lifecycle]) {
      if (!found.ok || !found.notice) continue;
      const n = { ...found.notice, noticedAt: seenAt };
      if (this.isNew(found.key!)) fresh.push(n);
      if (!this.interruption) {
        this.interruption = n;
        this.o.log.warn({ notice: n.notice, deadline: n.deadline, action: n.action }, 'EC2 says this host goes away: draining (no new dynos)');
        this.o.interrupted(n);
      } else if (n.notice === 'spot_interruption' && this.interruption.notice !== 'spot_interruption') {
        // A spot deadline is more than a scale-in says: it replaces it.
        this.interruption = n;
      }
    }
    if (rebalance.ok) {
      if (!rebalance.notice) this.rebalance = undefined;
      else if (this.rebalance?.noticeTime !== rebalance.notice.noticeTime) {
        this.rebalance = { ...rebalance.notice, noticedAt: seenAt };
        if (this.isNew(rebalance.key!)) {
          fresh.push(this.rebalance);
          this.o.log.warn({ noticeTime: this.rebalance.noticeTime }, 'EC2 recommends rebalancing this host: placement will avoid it');
        }
      }
    }
    if (fresh.length > 0) {
      for (const n of fresh) {
        try {
          this.o.notify(n);
        } catch (err) {
          this.o.log.error({ err, notice: n.notice }, 'could not queue a host notice');
        }
      }
      await this.saveKeys();
    }
    return spot.ok && rebalance.ok && lifecycle.ok;
  }

  private async spot(): Promise<Found> {
    const j = await this.o.client.getJson(SPOT_PATH);
    if (j === undefined) return { ok: true };
    const { action, time } = (j ?? {}) as { action?: unknown; time?: unknown };
    if (typeof action !== 'string' || !ACTIONS.has(action) || typeof time !== 'string' || !RFC3339.test(time) || Number.isNaN(Date.parse(time))) {
      throw new SlipwayError('IMDS_BAD_RESPONSE', `${SPOT_PATH} is not {"action": terminate|stop|hibernate, "time": RFC 3339}`);
    }
    return { ok: true, key: `spot:${action}:${time}`, notice: { notice: 'spot_interruption', action: action as 'terminate', deadline: time } };
  }

  private async rebalanceNotice(): Promise<Found> {
    const j = await this.o.client.getJson(REBALANCE_PATH);
    if (j === undefined) return { ok: true };
    const { noticeTime } = (j ?? {}) as { noticeTime?: unknown };
    if (typeof noticeTime !== 'string' || !RFC3339.test(noticeTime) || Number.isNaN(Date.parse(noticeTime))) {
      throw new SlipwayError('IMDS_BAD_RESPONSE', `${REBALANCE_PATH} is not {"noticeTime": RFC 3339}`);
    }
    return { ok: true, key: `rebalance:${noticeTime}`, notice: { notice: 'rebalance', noticeTime } };
  }

  private async lifecycle(): Promise<Found> {
    const state = (await this.o.client.get(LIFECYCLE_PATH))?.trim();
    if (state === undefined || state !== 'Terminated') return { ok: true };
    // EC2 names no time for a scale-in: the coordinator works to its own budget.
    return { ok: true, key: 'lifecycle:Terminated', notice: { notice: 'terminating' } };
  }

  /** Runs one path's read; a failure is logged at the start of its streak and at its end. */
  private async read(source: Source, fn: () => Promise<Found>): Promise<Found | { ok: false; notice?: undefined; key?: undefined }> {
    try {
      const found = await fn();
      if (this.failing.has(source)) {
        this.o.log.info({ source, code: this.failing.get(source) }, 'instance metadata answers again');
        this.failing.delete(source);
      }
      return found;
    } catch (err) {
      const code = err instanceof SlipwayError ? err.code : 'IMDS_UNAVAILABLE';
      if (!this.failing.has(source)) this.o.log.warn({ source, code, err }, 'instance metadata poll failed; retried with backoff (logged once until it answers)');
      this.failing.set(source, code);
      return { ok: false };
    }
  }

  private isNew(key: string): boolean {
    if (this.keys.includes(key)) return false;
    this.keys.push(key);
    if (this.keys.length > MAX_KEPT_KEYS) this.keys.splice(0, this.keys.length - MAX_KEPT_KEYS);
    return true;
  }

  private async loadKeys(): Promise<void> {
    this.loaded = true;
    try {
      const j = JSON.parse(await readFile(this.o.stateFile, 'utf8')) as { sent?: unknown };
      if (Array.isArray(j.sent)) this.keys = j.sent.filter((k): k is string => typeof k === 'string').slice(-MAX_KEPT_KEYS);
    } catch { /* none yet, or unreadable: notices are sent (again); the coordinator takes a repeat */ }
  }

  private async saveKeys(): Promise<void> {
    try {
      await writeFileAtomic(this.o.stateFile, JSON.stringify({ sent: this.keys }) + '\n');
    } catch (err) {
      // The event is in the journal already; a restart would at worst send the notice again.
      this.o.log.warn({ err }, 'could not record the host notices sent');
    }
  }
}

interface Found {
  ok: true;
  key?: string;
  notice?: Omit<HostNotice, 'noticedAt'>;
}
