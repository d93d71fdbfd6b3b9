// Commands sent to agents and not yet answered. Each waits for the agent's `result` with the
// same id, bounded by commandTimeoutMs; a closed link fails the commands sent on it at once.
// A result from another agent than the one commanded, or for an unknown id (late, after its
// timeout), is ignored.
import { SlipwayError } from '../errors.js';
import type { Result } from '../protocol.js';

interface Pending {
  agentId: string;
  /** The link it was sent on: when that link closes, the command's fate is unknown. */
  linkSerial: number;
  resolve: (result: Result) => void;
  reject: (err: SlipwayError) => void;
  timer: NodeJS.Timeout;
}

export class CommandTracker {
  private readonly pending = new Map<string, Pending>();

  constructor(private readonly timeoutMs: number) {}

  /** Starts waiting for the result of command `id` sent to `agentId` on link `linkSerial`. */
  track(id: string, agentId: string, linkSerial: number): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new SlipwayError('COMMAND_TIMEOUT', `agent ${agentId} did not answer command ${id} within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.pending.set(id, { agentId, linkSerial, resolve, reject, timer });
    });
  }

  /** Hands a result to its waiter. Returns false when nobody waits for it. */
  settle(agentId: string, result: Result): boolean {
    const p = this.pending.get(result.id);
    if (!p || p.agentId !== agentId) return false;
    this.finish(result.id, p);
    p.resolve(result);
    return true;
  }

  /** Fails one command (it could not be sent, or the agent answered it with an error message). */
  fail(id: string, agentId: string, err: SlipwayError): boolean {
    const p = this.pending.get(id);
    if (!p || p.agentId !== agentId) return false;
    this.finish(id, p);
    p.reject(err);
    return true;
  }

  /** Fails every command sent on a link that closed. */
  failLink(linkSerial: number, err: SlipwayError): void {
    for (const [id, p] of [...this.pending]) if (p.linkSerial === linkSerial) this.fail(id, p.agentId, err);
  }

  failAll(err: SlipwayError): void {
    for (const [id, p] of [...this.pending]) this.fail(id, p.agentId, err);
  }

  get size(): number {
    return this.pending.size;
  }

  private finish(id: string, p: Pending): void {
    clearTimeout(p.timer);
    this.pending.delete(id);
  }
}
