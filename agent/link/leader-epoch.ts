// The highest leader epoch the agent was welcomed with. Coordinators that share one store take
// leadership in turn, and each new leader's epoch (welcome.epoch) is higher. A deposed leader
// may not know yet that it was deposed (a SIGSTOP, a network partition) and may still accept
// links and send commands; the store fences its writes, and this fences its word on the agent:
//
// - a welcome with a lower epoch than the highest seen is refused: the session closes that link
//   (CLOSE_STALE_EPOCH) without applying anything of it (not its ackSeq, not its desired set)
//   and dials the next URL;
// - a command on a link whose welcome carried a lower epoch than the highest seen is answered
//   COORDINATOR_STALE_EPOCH and not executed, and its acks are ignored. A session holds one
//   link at a time, so this catches the frames that arrive on a refused link before it has
//   closed; the check is made where commands are dispatched, against this shared object, so it
//   also holds for any link that stays open while another was welcomed by a newer leader.
//
// In memory only, for the life of the process. A restarted agent accepts the first leader that
// welcomes it and learns the highest epoch again from there: a deposed leader is fenced in its
// store at once, so what it could still send a freshly started agent is short-lived. Persisting
// the number would outlive the store it came from: an operator who rebuilds the database starts
// the epochs again at 1, and every agent would refuse every coordinator until its file was
// deleted by hand.
import { SlipwayError } from '../../shared/errors.js';
import type { CoordinatorMessage, Result } from '../../shared/protocol.js';

/** The commands an epoch check refuses (everything with an id that changes or reads the host). */
const COMMANDS = new Set<CoordinatorMessage['type']>(['start_dyno', 'stop_dyno', 'drain', 'undrain', 'prefetch_slug']);

export class LeaderEpoch {
  private highestSeen = 0;

  /** The highest epoch a welcome carried (0: none yet, or coordinators without a shared store). */
  get highest(): number {
    return this.highestSeen;
  }

  /** Takes a welcome's epoch (absent: 0). False when it is below the highest seen: a deposed
   * leader, whose welcome must not be applied. */
  welcome(epoch: number | undefined): boolean {
    const e = epoch ?? 0;
    if (e < this.highestSeen) return false;
    this.highestSeen = e;
    return true;
  }

  /** Whether a link welcomed with `epoch` speaks for a deposed leader. */
  isStale(epoch: number): boolean {
    return epoch < this.highestSeen;
  }

  /** The refusal of a command `msg` that arrived on a link welcomed with `linkEpoch`, or
   * undefined when the command may run (a current link, or not a command). */
  refusal(msg: CoordinatorMessage, linkEpoch: number): Result | undefined {
    if (!this.isStale(linkEpoch) || !COMMANDS.has(msg.type) || !('id' in msg)) return undefined;
    const error = new SlipwayError('COORDINATOR_STALE_EPOCH', `${msg.type} refused: this link's coordinator welcomed with epoch ${linkEpoch}, below the leader epoch ${this.highestSeen} the agent was welcomed with since`);
    return { type: 'result', id: msg.id, ok: false, error: error.toWire() };
  }
}
