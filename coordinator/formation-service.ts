// Executes formations: keeps the desired formation of every app/process type, plans the
// difference with the dynos it has (formation-plan.ts) and carries it out through the
// agents. Changes to one app/process type run one at a time; different ones run side by side.
//
// Capacity is checked for the whole change before anything is sent, so a request that
// cannot fit changes nothing (503 INSUFFICIENT_CAPACITY). An agent may still refuse a dyno
// (its view moved since its last report): that dyno is then placed on the next agent.
import type { Logger } from '../shared/log.js';
import { isErrorCode, SlipwayError } from '../shared/errors.js';
import type { DesiredDyno, DynoSpec, Result } from '../shared/protocol.js';
import type { CommandSender } from '../shared/coordinator-sdk/index.js';
import type { AgentRegistry } from './agent-registry.js';
import type { DynoTable, DynoView } from './dyno-table.js';
import { formationSpecKey, type FormationRequest } from './formation-body.js';
import { newDynoId, planFormation, randomSuffix, type StartStep } from './formation-plan.js';
import { chooseAgent, placeDynos } from './placement.js';
import { LatencyRecorder } from './latency.js';

/** Refusals that say "not here" rather than "not at all": the dyno goes to the next agent. */
const PLACE_ELSEWHERE = new Set(['INSUFFICIENT_CAPACITY', 'HOST_DRAINING']);

export interface Formation extends FormationRequest {
  specKey: string;
}

/** What GET /apps/:app/formation shows: no env and no slug URL (both may hold secrets). */
export interface FormationView {
  app: string;
  type: string;
  quantity: number;
  size: string;
  command: string;
  stack: string;
  slug: { sha256: string };
  release?: string;
}

export interface FormationResult {
  app: string;
  type: string;
  quantity: number;
  dynos: DynoView[];
}

export interface FormationServiceDeps {
  dynos: DynoTable;
  registry: AgentRegistry;
  commander: CommandSender;
  log: Logger;
  /** The random part of new dyno ids; injectable for tests. */
  suffix?: () => string;
}

export class FormationService {
  private readonly formations = new Map<string, Formation>();
  private readonly queues = new Map<string, Promise<unknown>>();
  private readonly suffix: () => string;
  /** How long placement decisions take (the fit check of a change, and each dyno's choice). */
  readonly placement = new LatencyRecorder();

  constructor(private readonly deps: FormationServiceDeps) {
    this.suffix = deps.suffix ?? (() => randomSuffix());
  }

  /** Makes the formation so; resolves once every agent answered its commands (dynos are
   * then admitted, not necessarily up). Throws SlipwayError. */
  apply(request: FormationRequest): Promise<FormationResult> {
    return this.serialize(`${request.app}/${request.type}`, () => this.applyNow({ ...request, specKey: formationSpecKey(request) }));
  }

  get(app: string, type: string): Formation | undefined {
    return this.formations.get(`${app}/${type}`);
  }

  views(app: string): FormationView[] {
    return [...this.formations.values()].filter((f) => f.app === app).sort((a, b) => a.type.localeCompare(b.type)).map((f) => {
      const view: FormationView = { app: f.app, type: f.type, quantity: f.quantity, size: f.size.name, command: f.command, stack: f.stack, slug: { sha256: f.slug.sha256 } };
      if (f.release !== undefined) view.release = f.release;
      return view;
    });
  }

  knowsApp(app: string): boolean {
    for (const f of this.formations.values()) if (f.app === app) return true;
    return false;
  }

  /** After an agent's hello: stop the dynos it still runs that the coordinator gave up on
   * (stops that failed while its link was down, starts that timed out). Never throws. */
  reconcileAgent(agentId: string): void {
    for (const record of this.deps.dynos.unwantedOn(agentId)) {
      if (record.state !== 'stopping') void this.stopDyno(record.id, 'unwanted after reconnect');
    }
  }

  /**
   * The desired set for an agent's welcome: every dyno placed there that the coordinator
   * still wants. A wanted dyno the agent did not report (`reported`) comes with its spec, so
   * the agent starts it again, when the formation it was started from is still current;
   * otherwise it is left out (and recorded down by the caller).
   */
  desiredOn(agentId: string, reported: ReadonlySet<string>): DesiredDyno[] {
    const out: DesiredDyno[] = [];
    for (const r of this.deps.dynos.on(agentId)) {
      if (r.desired !== 'run') continue;
      if (reported.has(r.id)) {
        out.push({ id: r.id });
        continue;
      }
      if (r.state === 'down') continue;
      const f = this.formations.get(`${r.app}/${r.type}`);
      if (!f || r.specKey !== f.specKey) continue;
      out.push({ id: r.id, spec: this.specOf(f, r.id, r.name) });
    }
    return out;
  }

  private async applyNow(f: Formation): Promise<FormationResult> {
    const { dynos, registry, log } = this.deps;
    const current = dynos.wantedOf(f.app, f.type).map((r) => ({ id: r.id, index: r.index, state: r.state, ...(r.specKey ? { specKey: r.specKey } : {}) }));
    const plan = planFormation(f, current);
    const fits = this.placement.time(() => placeDynos(registry.placementViews(), plan.starts.map(() => f.size.memoryMb)));
    const unplaced = fits.filter((a) => a === undefined).length;
    if (unplaced > 0) {
      throw new SlipwayError('INSUFFICIENT_CAPACITY', `no room for ${unplaced} of ${plan.starts.length} new ${f.type} dynos of ${f.size.memoryMb} MB (${f.size.name}) on the connected agents; nothing was changed`);
    }
    this.formations.set(`${f.app}/${f.type}`, f);
    log.info({ app: f.app, type: f.type, quantity: f.quantity, starts: plan.starts.map((s) => s.name), stops: plan.stops.map((s) => `${s.dynoId}:${s.reason}`) }, 'applying formation');

    const work = [
      ...plan.stops.map((s) => this.stopDyno(s.dynoId, s.reason)),
      ...plan.starts.map((s) => this.startDyno(f, s)),
    ];
    const failures = (await Promise.allSettled(work)).flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    for (const step of plan.starts) for (const old of dynos.downAt(f.app, f.type, step.index)) dynos.forget(old.id);
    if (failures.length > 0) {
      const first = failures.find((e) => e instanceof SlipwayError && e.code === 'INSUFFICIENT_CAPACITY') ?? failures[0];
      const err = first instanceof SlipwayError ? first : new SlipwayError('INTERNAL', String(first), { cause: first });
      throw new SlipwayError(err.code, `${failures.length} of ${plan.starts.length} new ${f.type} dynos did not start: ${err.message}`, { cause: err });
    }
    return { app: f.app, type: f.type, quantity: f.quantity, dynos: dynos.views((r) => r.app === f.app && r.type === f.type && r.desired === 'run') };
  }

  /** Starts the dyno of one index, trying agents from most free memory down until one admits
   * it; then stops the dynos it replaces. */
  private async startDyno(f: Formation, step: StartStep): Promise<void> {
    const { dynos, registry, commander, log } = this.deps;
    const tried = new Set<string>();
    for (;;) {
      const agent = this.placement.time(() => chooseAgent(registry.placementViews(), f.size.memoryMb, tried));
      if (!agent) {
        const refused = tried.size > 0 ? ` (tried ${[...tried].join(', ')})` : '';
        throw new SlipwayError('INSUFFICIENT_CAPACITY', `no agent has ${f.size.memoryMb} MB free for ${f.app} ${step.name}${refused}`);
      }
      tried.add(agent.id);
      const spec = this.specFor(f, step);
      dynos.addPlaced(spec, agent.id, f.specKey);
      registry.reserve(agent.id, spec.id, f.size.memoryMb);
      let result: Result;
      try {
        result = await commander.sendCommand(agent.id, { type: 'start_dyno', dyno: spec });
      } catch (err) {
        // No answer: the agent may have admitted it or not. Want it stopped wherever it turns
        // up (now or at the agent's next hello) and place the index elsewhere.
        registry.release(agent.id, spec.id);
        log.warn({ app: f.app, dyno: step.name, dynoId: spec.id, agentId: agent.id, err }, 'start_dyno unanswered; placing elsewhere');
        void this.stopDyno(spec.id, 'start unanswered');
        continue;
      }
      if (result.ok) {
        registry.admit(agent.id, spec.id);
        if (result.dyno) dynos.applyStatus(agent.id, result.dyno, 'result');
        log.info({ app: f.app, dyno: step.name, dynoId: spec.id, agentId: agent.id }, 'dyno admitted');
        await Promise.all(step.replaces.map((old) => this.stopDyno(old, 'replaced')));
        return;
      }
      registry.release(agent.id, spec.id);
      dynos.forget(spec.id);
      const { code, message } = result.error;
      if (PLACE_ELSEWHERE.has(code)) {
        log.info({ app: f.app, dyno: step.name, agentId: agent.id, code }, 'agent refused the dyno; trying the next one');
        continue;
      }
      throw new SlipwayError(isErrorCode(code) ? code : 'INTERNAL', `agent ${agent.id} refused ${f.app} ${step.name}: ${message}`);
    }
  }

  /** Marks the dyno unwanted and asks its agent to stop it (the default grace applies). A
   * failure is logged, not thrown: the dyno stays unwanted and is stopped at the agent's next
   * hello. The route goes when the agent reports 'stopping'. */
  private async stopDyno(dynoId: string, reason: string): Promise<void> {
    const { dynos, commander, log } = this.deps;
    const record = dynos.markUnwanted(dynoId);
    if (!record || record.state === 'down') return;
    try {
      const result = await commander.sendCommand(record.agentId, { type: 'stop_dyno', dynoId });
      if (result.ok) {
        log.info({ app: record.app, dyno: record.name, dynoId, agentId: record.agentId, reason }, 'dyno stopping');
      } else if (result.error.code === 'DYNO_NOT_FOUND') {
        dynos.forget(dynoId);
      } else {
        log.warn({ dynoId, agentId: record.agentId, code: result.error.code }, 'agent refused stop_dyno; retried at its next hello');
      }
    } catch (err) {
      log.warn({ dynoId, agentId: record.agentId, err }, 'stop_dyno unanswered; retried at the agent\'s next hello');
    }
  }

  private specFor(f: Formation, step: StartStep): DynoSpec {
    let id: string;
    do id = newDynoId(f.app, f.type, step.index, this.suffix());
    while (this.deps.dynos.has(id));
    return this.specOf(f, id, step.name);
  }

  private specOf(f: Formation, id: string, name: string): DynoSpec {
    const spec: DynoSpec = { id, app: f.app, type: f.type, name, size: f.size, command: f.command, env: f.env, slug: f.slug, stack: f.stack };
    if (f.release !== undefined) spec.release = f.release;
    return spec;
  }

  private serialize<T>(key: string, run: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(key) ?? Promise.resolve();
    const next = previous.then(run, run);
    const tail = next.then(() => undefined, () => undefined);
    this.queues.set(key, tail);
    void tail.then(() => {
      if (this.queues.get(key) === tail) this.queues.delete(key);
    });
    return next;
  }
}
