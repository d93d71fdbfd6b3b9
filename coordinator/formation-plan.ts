// Formation planning: from the desired formation of one app/process type and the dynos the
// coordinator keeps for it, compute which dynos to start and which to stop. Pure (the random
// part of a dyno id is injected), so scale-up, scale-down and replacement are unit-tested;
// FormationService executes the plan.
//
// Rules (Heroku's): dynos are named <type>.1..<type>.N; scaling down stops the highest
// indices first; a changed spec (command, size, slug, env, stack) replaces every dyno: the
// new one at an index starts first and the old one is stopped once the new one is admitted.
import { randomInt } from 'node:crypto';
import type { DynoAttachSpec, DynoStateName } from '../shared/protocol.js';

export interface FormationTarget {
  app: string;
  type: string;
  quantity: number;
  /** Fingerprint of the spec every dyno of this formation must run (formationSpecKey). */
  specKey: string;
}

/** A dyno the coordinator wants running for this formation (not one it already stops). */
export interface FormationDyno {
  id: string;
  index: number;
  state: DynoStateName;
  /** Undefined for a dyno adopted from an agent's hello: its spec is unknown. */
  specKey?: string;
}

export interface StartStep {
  index: number;
  name: string;
  /** Dynos at the same index to stop once this one is admitted. */
  replaces: string[];
  /** An attached one-off dyno: its spec carries the agent's leg of the rendezvous. */
  attach?: DynoAttachSpec;
}

export type StopReason = 'scale_down' | 'replaced' | 'duplicate';
export interface StopStep {
  dynoId: string;
  index: number;
  reason: StopReason;
}

export interface FormationPlan {
  starts: StartStep[];
  /** Stops that do not wait for a start, highest index first. */
  stops: StopStep[];
  /** Dynos that stay as they are. */
  keep: string[];
}

export function dynoName(type: string, index: number): string {
  return `${type}.${index}`;
}

/** Index of a dyno name (`web.3` -> 3); NaN when the name has none. */
export function dynoIndex(name: string): number {
  const dot = name.lastIndexOf('.');
  return dot < 0 ? NaN : Number(name.slice(dot + 1));
}

export function planFormation(target: FormationTarget, current: readonly FormationDyno[]): FormationPlan {
  const byIndex = new Map<number, FormationDyno[]>();
  for (const dyno of current) {
    const list = byIndex.get(dyno.index);
    if (list) list.push(dyno);
    else byIndex.set(dyno.index, [dyno]);
  }
  const plan: FormationPlan = { starts: [], stops: [], keep: [] };
  for (let index = 1; index <= target.quantity; index++) {
    const here = byIndex.get(index) ?? [];
    const matching = here.filter((d) => d.specKey === target.specKey).sort(preferRunning);
    const stale = here.filter((d) => d.specKey !== target.specKey);
    const kept = matching[0];
    if (kept) {
      plan.keep.push(kept.id);
      for (const extra of matching.slice(1)) plan.stops.push({ dynoId: extra.id, index, reason: 'duplicate' });
      for (const old of stale) plan.stops.push({ dynoId: old.id, index, reason: 'replaced' });
    } else {
      plan.starts.push({ index, name: dynoName(target.type, index), replaces: stale.map((d) => d.id) });
    }
  }
  for (const [index, here] of byIndex) {
    if (index >= 1 && index <= target.quantity) continue;
    for (const dyno of here) plan.stops.push({ dynoId: dyno.id, index, reason: 'scale_down' });
  }
  plan.stops.sort((a, b) => b.index - a.index || (a.dynoId < b.dynoId ? -1 : 1));
  return plan;
}

/** Up before starting before crashed, then oldest id: the dyno most worth keeping first. */
function preferRunning(a: FormationDyno, b: FormationDyno): number {
  const rank = (s: DynoStateName): number => (s === 'up' ? 0 : s === 'starting' ? 1 : 2);
  return rank(a.state) - rank(b.state) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
const DYNO_ID_MAX = 63; // DynoId's pattern in shared/protocol.ts: 1 + up to 62 characters.

export function randomSuffix(length = 6): string {
  let out = '';
  for (let i = 0; i < length; i++) out += ID_ALPHABET[randomInt(ID_ALPHABET.length)];
  return out;
}

/** `${app}-${type}-${index}-${suffix}`, fitted to the DynoId pattern: the process type is
 * lowercased, `_` becomes `-`, and a long type is shortened (the suffix keeps ids unique). */
export function newDynoId(app: string, type: string, index: number, suffix: string): string {
  const cleanType = type.toLowerCase().replace(/_/g, '-');
  const fixed = app.length + String(index).length + suffix.length + 3;
  const room = Math.max(1, DYNO_ID_MAX - fixed);
  return `${app}-${cleanType.slice(0, room)}-${index}-${suffix}`;
}
