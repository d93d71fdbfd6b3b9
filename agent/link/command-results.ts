// Executing the same command id twice has the effect of once: the first result is stored
// and replayed for repeats (a coordinator that resends after a reconnect is safe).
import type { Result } from '../../shared/protocol.js';
import { asSlipwayError } from '../../shared/errors.js';

/** Coordinators resend within seconds of a reconnect; 1,000 recent ids cover that window many times over. */
export const MAX_REMEMBERED_COMMANDS = 1_000;

export class CommandResults {
  private readonly results = new Map<string, Result>();

  constructor(private readonly max = MAX_REMEMBERED_COMMANDS) {}

  /** Runs `exec` once per id and returns its result; a repeated id returns the stored one. */
  run(id: string, exec: () => Omit<Extract<Result, { ok: true }>, 'type' | 'id' | 'ok'>): { result: Result; repeated: boolean } {
    const stored = this.results.get(id);
    if (stored) return { result: stored, repeated: true };
    let result: Result;
    try {
      result = { type: 'result', id, ok: true, ...exec() };
    } catch (err) {
      result = { type: 'result', id, ok: false, error: asSlipwayError(err).toWire() };
    }
    this.results.set(id, result);
    if (this.results.size > this.max) this.results.delete(this.results.keys().next().value as string);
    return { result, repeated: false };
  }
}
