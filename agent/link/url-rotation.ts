// Which coordinator the link dials next, and when. Several coordinators may share one store;
// one of them leads and the others refuse the agent's upgrade (503 COORDINATOR_NOT_LEADER).
// The agent holds their URLs in the operator's order and dials one at a time:
//
// - a round starts from the URL that welcomed the agent last (the leader, as far as the agent
//   knows; the first URL until one has welcomed it), except once a welcomed link dropped:
//   then from the URL after it. A leader's link drops because it died, was stopped or was
//   deposed (it closes its links with 1012), and a follower takes over; dialling the old
//   leader first would cost every agent of the fleet a dead dial at the moment of the storm
//   (the fleet benchmark measured the attempts a second doubled: 280 against 140 at the new
//   leader). After a mere network blip the old leader is the round's last dial, one refused
//   dial later;
// - a dial that ends without a welcome (refused upgrade, connection refused, handshake or
//   welcome timeout, a welcome from a lower epoch) moves on to the next URL at once;
// - only after a full round of failures does the agent wait before the next round. The
//   backoff (backoff.ts) counts rounds, not dials: with one URL everything is as it was before
//   the list existed, and with N a dead coordinator in the list costs N-1 quick dials, never a
//   faster backoff.
//
// Times a coordinator names (Retry-After on a refused upgrade, retry-after-ms in a close
// reason) keep their meaning (docs/protocol.md, Reconnect), but each speaks for the
// coordinator that named it: inside a round they do not hold up the next URL. A round ends on
// a named time only when every URL in it named one (the earliest: the first moment one of them
// said it may take the agent); when any failed without naming one (unreachable), the agent
// knows nothing better than its own backoff, which also keeps the spread window
// (Backoff.next). A welcomed link that drops starts the next round after the named time, else
// at a random point of the spread hint, else the backoff, exactly as with one URL.
//
// Pure: the session owns the socket and the timers.
import type { Backoff } from './backoff.js';

/** When to dial next, and why (the session's log and LinkStatus.lastClose). */
export interface Redial {
  delayMs: number;
  /** The delay is a time a coordinator named (every URL of the round named one, or the
   * welcomed link's close did). */
  namedByCoordinator: boolean;
  /** The round goes on with the next URL at once (false: a new round starts after delayMs). */
  sameRound: boolean;
}

export class UrlRotation {
  /** Where every round starts: the URL that welcomed the agent last, or the one after it
   * once that link dropped. */
  private preferred = 0;
  private index = 0;
  /** Failed dials in this round, each with the time its coordinator named (or undefined). */
  private failures: (number | undefined)[] = [];

  constructor(readonly urls: readonly string[], private readonly backoff: Backoff) {
    if (urls.length === 0) throw new Error('no coordinator URL to dial');
  }

  /** The URL to dial now. */
  get url(): string {
    return this.urls[this.index]!;
  }

  /** The URL rounds start from (the last one that welcomed the agent). */
  get preferredUrl(): string {
    return this.urls[this.preferred]!;
  }

  /** The current URL welcomed the agent: rounds start from it from now on. */
  welcomed(): void {
    this.preferred = this.index;
    this.startRound();
  }

  /** The current URL's dial ended without a welcome; `namedMs` is a time its coordinator
   * named. Moves `url` on: to the next URL at once while the round has URLs left, else back to
   * the preferred one after the wait before the next round. */
  failed(namedMs: number | undefined, spreadMs: number): Redial {
    this.failures.push(namedMs);
    if (this.failures.length < this.urls.length) {
      this.index = (this.index + 1) % this.urls.length;
      return { delayMs: 0, namedByCoordinator: false, sameRound: true };
    }
    const failures = this.failures;
    const named = failures.every((ms) => ms !== undefined) ? Math.min(...failures) : undefined;
    this.startRound();
    if (named !== undefined) return { delayMs: this.backoff.startFrom(named, spreadMs), namedByCoordinator: true, sameRound: false };
    return { delayMs: this.backoff.next(), namedByCoordinator: false, sameRound: false };
  }

  /** A welcomed link closed: rounds start from the URL after the one that welcomed it (see
   * the header), after the time its coordinator named, else at a random point within the
   * spread hint (a fleet's redials spread over it), else after the backoff. */
  dropped(namedMs: number | undefined, spreadMs: number): Redial {
    this.preferred = (this.preferred + 1) % this.urls.length;
    this.startRound();
    if (namedMs !== undefined) return { delayMs: this.backoff.startFrom(namedMs, spreadMs), namedByCoordinator: true, sameRound: false };
    return { delayMs: spreadMs > 0 ? this.backoff.spread(spreadMs) : this.backoff.next(), namedByCoordinator: false, sameRound: false };
  }

  /** Where the round stands, for the log: which dial of how many. */
  get attempt(): { dial: number; of: number } {
    return { dial: this.failures.length + 1, of: this.urls.length };
  }

  private startRound(): void {
    this.index = this.preferred;
    this.failures = [];
  }
}
