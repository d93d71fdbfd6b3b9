// Executes formations: keeps the desired formation of every app/process type, plans the
// difference with the dynos it has (formation-plan.ts) and carries it out through the
// agents. Changes to one app/process type run one at a time; different ones run side by side.
//
// Capacity is checked for the whole change before anything is sent, so a request that
// cannot fit changes nothing (503 INSUFFICIENT_CAPACITY). An agent may still refuse a dyno
// (its view moved since its last report): that dyno is then placed on the next agent.
//
// A host that EC2 takes away (a host_notice with spot_interruption or terminating: the agent
// has stopped admitting dynos) is evacuated against its deadline (2 min for spot): for each of
// its dynos a replacement at the same index starts elsewhere first; once the replacements are up
// (at the latest at deadline - margin - MIN_EVACUATION_GRACE_MS: a replacement that is slow to
// boot costs the old dynos grace, never the margin) the host's dynos are stopped with grace =
// min(stopGraceMs, time left - margin), so that SIGKILL and the `down` report land before the
// instance goes. Serving traffic is worth more than a long grace: with a 2 min notice and
// replacements up within 80 s, the old dynos still get Heroku's full 30 s. Routes move as the replacements report `up`
// and the old ones `stopping`: no request finds the app without a dyno when capacity allows.
import type { Logger } from '../shared/log.js';
import { isErrorCode, SlipwayError } from '../shared/errors.js';
import type { DesiredDyno, DynoAttachSpec, DynoSize, DynoSpec, HostNotice, Result } from '../shared/protocol.js';
import type { CommandSender } from '../shared/coordinator-sdk/index.js';
import type { AgentRegistry } from './agent-registry.js';
import type { DynoTable, DynoView } from './dyno-table.js';
import { formationSpecKey, type FormationRequest, type OneOffRequest } from './formation-body.js';
import type { Rendezvous } from '../shared/coordinator-sdk/rendezvous.js';
import { RENDEZVOUS_PATH } from '../shared/attach.js';
import { newDynoId, planFormation, randomSuffix, type StartStep } from './formation-plan.js';
import { randomInt } from 'node:crypto';
import { chooseAgent, placeDynos, Spread } from './placement.js';
import { LatencyRecorder } from './latency.js';
import type { StoredFormation, StoreWrite } from './store/store.js';

/** An evacuation's margin before EC2's deadline: the agent's SIGKILL, its `down` report and the
 * teardown must land before the instance stops (EC2 gives no grace past `time`). */
export const EVACUATION_MARGIN_MS = 10_000;
/** The budget of an interruption that names no time (an Auto Scaling scale-in without a
 * lifecycle hook): the spot notice's 2 minutes, the shortest EC2 gives. */
export const DEFAULT_EVACUATION_MS = 120_000;
/** Heroku's SIGTERM-to-SIGKILL grace, the agents' default (their stopGraceMs). */
export const DEFAULT_STOP_GRACE_MS = 30_000;
/** The least grace an evacuation keeps for the host's dynos while it waits for replacements
 * (a third of Heroku's 30 s: time for a web dyno to finish its requests in flight). */
export const MIN_EVACUATION_GRACE_MS = 10_000;
/** How often an evacuation looks whether the replacements are up. */
const EVACUATION_POLL_MS = 100;

/** Refusals that say "not here" rather than "not at all": the dyno goes to the next agent. */
// The host's own disk or descriptors (agent/host/pressure.ts) refuse new work on that host only.
const PLACE_ELSEWHERE = new Set(['INSUFFICIENT_CAPACITY', 'HOST_DRAINING', 'STATE_DIR_FULL', 'STATE_DIR_FAILING', 'AGENT_FD_LIMIT']);

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
  /** The grace an evacuation gives a host's dynos when the deadline leaves room (default 30 s). */
  stopGraceMs?: number;
  /** Where every formation change is written through (the leader's StoreWriter). */
  sink?: (write: StoreWrite) => void;
  /** Resolves once the changes made so far are durable; apply() answers only after it, and
   * a start_dyno goes out only after its dyno's placement is durable. */
  durable?: () => Promise<void>;
  /** Resolves once the router serves the route table as it is now (HAProxy: the runtime API
   * applied it). Awaited after a dyno's route left the table and before its SIGTERM, and after
   * a replacement's route arrived and before the dyno it replaces leaves. */
  routesSettled?: () => Promise<void>;
  /** Preboot: how long a replacement may take to be up and routable before the dyno it
   * replaces is stopped anyway (default PREBOOT_WAIT_MS). */
  prebootWaitMs?: number;
  /** The term's rendezvous for attached one-off dynos (absent: only detached ones). */
  rendezvous?: Rendezvous;
}

/** The answer to an attached run: where the CLI dials its leg, with its secret. */
export interface OneOffView extends DynoView {
  attach?: { path: string; secret: string };
}

/** The fingerprint a one-off dyno's record carries: no formation plans it. */
const ONE_OFF_SPEC_KEY = 'one-off';

/** Heroku's boot timeout (60 s) plus the time to pull and unpack a slug on a cold host. */
export const PREBOOT_WAIT_MS = 90_000;
/** How often a preboot looks whether the replacement is up. */
const PREBOOT_POLL_MS = 50;

/** A formation's wanted dynos per agent (placement.ts's Spread), without `leaving`. */
function spreadOf(wanted: readonly { id: string; agentId: string }[], leaving: ReadonlySet<string>): Spread {
  return new Spread(wanted.filter((r) => !leaving.has(r.id)).map((r) => r.agentId));
}

export class FormationService {
  private readonly formations = new Map<string, Formation>();
  private readonly queues = new Map<string, Promise<unknown>>();
  /** Agents being (or done being) evacuated, with the evacuation's end. */
  private readonly evacuations = new Map<string, Promise<void>>();
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

  /** Heroku's `ps:scale`: a new quantity (and size) for formations the app has, each a change
   * of its own (read and applied in its formation's queue, so a PUT in between is not undone).
   * Every type must exist before anything changes (FORMATION_NOT_FOUND); a change that then
   * fails (capacity) leaves the others applied, and the error names which. */
  async scale(app: string, updates: readonly { type: string; quantity?: number; size?: DynoSize }[]): Promise<FormationResult[]> {
    for (const u of updates) this.formationOf(app, u.type);
    const outcomes = await Promise.allSettled(updates.map((u) => this.serialize(`${app}/${u.type}`, () => {
      const current = this.formationOf(app, u.type);
      const next: FormationRequest = { ...current, quantity: u.quantity ?? current.quantity, size: u.size ?? current.size };
      return this.applyNow({ ...next, specKey: formationSpecKey(next) });
    })));
    const failed = outcomes.flatMap((o, i) => (o.status === 'rejected' ? [{ type: updates[i]!.type, err: o.reason as unknown }] : []));
    if (failed.length > 0) {
      const first = failed[0]!.err;
      const code = first instanceof SlipwayError ? first.code : 'INTERNAL';
      const applied = updates.filter((u) => !failed.some((f) => f.type === u.type)).map((u) => u.type);
      throw new SlipwayError(code, `${failed.map((f) => `${f.type}: ${f.err instanceof Error ? f.err.message : String(f.err)}`).join('; ')}${applied.length > 0 ? ` (applied: ${applied.join(', ')})` : ''}`, { cause: first });
    }
    return outcomes.map((o) => (o as PromiseFulfilledResult<FormationResult>).value);
  }

  /**
   * Heroku's `ps:restart`: every dyno of the app, of one process type (`web`) or one dyno
   * (`web.2`) is replaced by a fresh one at its index, from the formation as it is now. The
   * replacement starts first and the old dyno stops once it is up and routed (preboot, as for
   * a release): a restart drops no request. All of a formation's replacements must fit
   * beside the dynos they replace, else nothing restarts (INSUFFICIENT_CAPACITY). Resolves
   * with the names of the dynos restarted, once the old ones were told to stop.
   */
  async restart(app: string, selector?: string): Promise<string[]> {
    const types = [...this.formations.values()].filter((f) => f.app === app).map((f) => f.type);
    if (types.length === 0) throw new SlipwayError('APP_NOT_FOUND', `no app ${JSON.stringify(app)}`);
    const byName = selector !== undefined && selector.includes('.');
    const chosen = selector === undefined ? types : types.filter((t) => t === (byName ? selector.slice(0, selector.lastIndexOf('.')) : selector));
    if (chosen.length === 0) throw new SlipwayError(byName ? 'DYNO_NOT_FOUND' : 'FORMATION_NOT_FOUND', `app ${app} has no ${byName ? 'dyno' : 'process type'} ${JSON.stringify(selector)}`);
    const restarted = await Promise.all(chosen.map((type) => this.serialize(`${app}/${type}`, async () => {
      const f = this.formationOf(app, type);
      const wanted = this.deps.dynos.wantedOf(app, type);
      const old = wanted.filter((r) => !byName || r.name === selector);
      if (byName && old.length === 0) throw new SlipwayError('DYNO_NOT_FOUND', `app ${app} has no dyno ${selector}`);
      const spread = spreadOf(wanted, new Set(old.map((r) => r.id)));
      const fits = this.placement.time(() => placeDynos(this.deps.registry.placementViews(), old.map(() => f.size.memoryMb), spread));
      if (fits.some((a) => a === undefined)) {
        throw new SlipwayError('INSUFFICIENT_CAPACITY', `no room to start ${old.length} fresh ${type} dynos of ${f.size.memoryMb} MB beside the ones they replace; nothing was restarted`);
      }
      this.deps.log.info({ app, type, dynos: old.map((r) => r.name) }, 'restarting dynos');
      await Promise.all(old.map((r) => this.startDyno(f, { index: r.index, name: r.name, replaces: [r.id] }, new Set(), spread)));
      return old.map((r) => r.name);
    })));
    return restarted.flat();
  }

  /**
   * Heroku's `run --detach`: a one-off dyno `run.N` of the app's current release (the web
   * formation's, else the first process type's: slug, stack, release, env), with the command
   * given, the env given over the release's, and the formation's size unless one is given.
   * Placed like any dyno; never restarted (the agent's one-off rule); its output is in the
   * app's logs under run.N; once it ended the coordinator stops it, so that it leaves ps.
   * Resolves once an agent admitted it.
   */
  async runOneOff(app: string, request: OneOffRequest): Promise<OneOffView> {
    const types = [...this.formations.values()].filter((f) => f.app === app).sort((a, b) => (a.type === 'web' ? -1 : b.type === 'web' ? 1 : a.type.localeCompare(b.type)));
    const release = types[0];
    if (!release) throw new SlipwayError('APP_NOT_FOUND', `no app ${JSON.stringify(app)}: a one-off dyno runs the release of a formation`);
    const taken = new Set(this.deps.dynos.views((r) => r.app === app && r.type === 'run').map((d) => d.name));
    let index: number;
    do index = randomInt(1000, 10_000);
    while (taken.has(`run.${index}`));
    const name = `run.${index}`;
    const oneOff: Formation = {
      ...release, type: 'run', quantity: 1, command: request.command, size: request.size ?? release.size,
      env: { ...release.env, ...(request.env ?? {}) }, specKey: ONE_OFF_SPEC_KEY,
    };
    const step: StartStep = { index, name, replaces: [] };
    // Attached: a rendezvous first (the agent's leg secret goes in the spec), placed only on an
    // agent that announces the feature (an older one would refuse the spec's unknown field).
    let ticket: ReturnType<Rendezvous['open']> | undefined;
    let id: string | undefined;
    let avoid: ReadonlySet<string> = new Set();
    if (request.attach) {
      const rendezvous = this.deps.rendezvous;
      if (!rendezvous) throw new SlipwayError('INTERNAL', 'this coordinator has no rendezvous for attached runs');
      // A session that ends other than normally (the CLI went away, a leg never came, the
      // coordinator stops) stops the dyno here too: the agent does so on its own when its leg
      // closes, but an agent that never dialled has no leg to hear it on.
      ticket = rendezvous.open(`${app} ${name}`, (how) => {
        if (how.code !== 1000 && id !== undefined) this.oneOffEnded(id);
      });
      step.attach = { session: ticket.id, secret: ticket.agentSecret, tty: request.attach.tty };
      if (request.attach.cols !== undefined) step.attach.cols = request.attach.cols;
      if (request.attach.rows !== undefined) step.attach.rows = request.attach.rows;
      avoid = this.deps.registry.lacking(request.attach.tty ? 'attach-tty' : 'attach');
    }
    let view: OneOffView | undefined;
    try {
      id = await this.startDyno(oneOff, step, avoid);
      await this.deps.durable?.();
      view = this.deps.dynos.views((r) => r.id === id)[0];
      if (!view) throw new SlipwayError('DYNO_CRASHED', `one-off ${name} of ${app} ended before it could be shown`);
    } catch (err) {
      if (ticket) this.deps.rendezvous?.cancel(ticket.id, 'the dyno could not be started');
      throw err;
    }
    return ticket ? { ...view, attach: { path: RENDEZVOUS_PATH + ticket.id, secret: ticket.cliSecret } } : view;
  }

  /** A one-off dyno reported crashed (its command ended: the agent never restarts it) or down:
   * it is stopped and forgotten. Never throws. */
  oneOffEnded(dynoId: string): void {
    const r = this.deps.dynos.get(dynoId);
    if (r?.type === 'run' && r.desired === 'run') void this.stopDyno(dynoId, 'one-off ended');
  }

  private formationOf(app: string, type: string): Formation {
    const f = this.formations.get(`${app}/${type}`);
    if (!f) throw new SlipwayError('FORMATION_NOT_FOUND', `app ${app} has no ${type} formation (create it with PUT /apps/${app}/formation/${type})`);
    return f;
  }

  /** The names of the apps that have a formation, sorted. */
  apps(): string[] {
    return [...new Set([...this.formations.values()].map((f) => f.app))].sort();
  }

  /** A new leadership term starts from the stored formations. */
  restore(stored: readonly StoredFormation[]): void {
    this.formations.clear();
    for (const f of stored) this.formations.set(`${f.app}/${f.type}`, structuredClone(f));
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
    // One-off dynos that ended while the link was down.
    for (const record of this.deps.dynos.on(agentId)) {
      if (record.type === 'run' && (record.state === 'crashed' || record.state === 'down')) this.oneOffEnded(record.id);
    }
  }

  /** A host_notice from an agent (or an interruption a hello's capacity carries). A rebalance
   * recommendation changes only placement (placement.ts); an interruption evacuates the host,
   * once per agent. Never throws; the returned promise ends with the evacuation (tests). */
  hostNotice(agentId: string, notice: HostNotice): Promise<void> {
    if (notice.notice === 'rebalance') return Promise.resolve();
    const running = this.evacuations.get(agentId);
    if (running) return running;
    const done = this.evacuate(agentId, notice).catch((err: unknown) => this.deps.log.error({ err, agentId }, 'evacuation failed'));
    this.evacuations.set(agentId, done);
    return done;
  }

  private async evacuate(agentId: string, notice: HostNotice): Promise<void> {
    const { dynos, log } = this.deps;
    const deadline = notice.deadline ? Date.parse(notice.deadline) : Date.now() + DEFAULT_EVACUATION_MS;
    const grace = this.deps.stopGraceMs ?? DEFAULT_STOP_GRACE_MS;
    const victims = dynos.on(agentId).filter((r) => r.desired === 'run' && r.state !== 'down' && r.state !== 'stopping');
    log.warn({ agentId, notice: notice.notice, deadline: new Date(deadline).toISOString(), dynos: victims.map((r) => r.name) }, 'host goes away: starting replacements elsewhere');
    // One formation's replacements run in its queue, so that no formation change plans around
    // a half-made evacuation; different formations evacuate side by side.
    const byFormation = new Map<string, typeof victims>();
    for (const r of victims) byFormation.set(`${r.app}/${r.type}`, [...(byFormation.get(`${r.app}/${r.type}`) ?? []), r]);
    await Promise.all([...byFormation].map(([key, records]) => this.serialize(key, async () => {
      const f = this.formations.get(key);
      const spread = f ? spreadOf(dynos.wantedOf(f.app, f.type), new Set(records.map((r) => r.id))) : new Spread();
      const started = await Promise.all(records.map(async (old) => {
        // Adopted after a coordinator restart (its spec unknown) or from an older spec: no
        // replacement here; the formation's next change starts what is missing.
        if (!f || old.specKey !== f.specKey) return undefined;
        try {
          return await this.startDyno(f, { index: old.index, name: old.name, replaces: [] }, new Set([agentId]), spread);
        } catch (err) {
          log.warn({ agentId, dyno: old.name, err }, 'no replacement for a dyno of a host that goes away');
          return undefined;
        }
      }));
      // Wait for the replacements, but not into the margin and the least grace.
      const waitUntil = deadline - EVACUATION_MARGIN_MS - Math.min(grace, MIN_EVACUATION_GRACE_MS);
      const up = () => started.every((id) => id === undefined || dynos.get(id)?.state === 'up' || dynos.get(id) === undefined);
      while (!up() && Date.now() < waitUntil) await new Promise((r) => setTimeout(r, EVACUATION_POLL_MS));
      const graceMs = Math.max(0, Math.min(grace, deadline - Date.now() - EVACUATION_MARGIN_MS));
      log.info({ agentId, replacementsUp: up(), graceMs, dynos: records.map((r) => r.name) }, 'stopping the dynos of a host that goes away');
      await Promise.all(records.map((old) => this.stopDyno(old.id, 'host interrupted', graceMs)));
    })));
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
    const wanted = dynos.wantedOf(f.app, f.type);
    const current = wanted.map((r) => ({ id: r.id, index: r.index, state: r.state, ...(r.specKey ? { specKey: r.specKey } : {}) }));
    const plan = planFormation(f, current);
    // Placement spreads the dynos the formation keeps: the ones this change stops or replaces leave.
    const spread = spreadOf(wanted, new Set([...plan.stops.map((s) => s.dynoId), ...plan.starts.flatMap((s) => s.replaces)]));
    const fits = this.placement.time(() => placeDynos(registry.placementViews(), plan.starts.map(() => f.size.memoryMb), spread));
    const unplaced = fits.filter((a) => a === undefined).length;
    if (unplaced > 0) {
      throw new SlipwayError('INSUFFICIENT_CAPACITY', `no room for ${unplaced} of ${plan.starts.length} new ${f.type} dynos of ${f.size.memoryMb} MB (${f.size.name}) on the connected agents; nothing was changed`);
    }
    this.formations.set(`${f.app}/${f.type}`, f);
    this.deps.sink?.({ kind: 'formation', formation: f });
    log.info({ app: f.app, type: f.type, quantity: f.quantity, starts: plan.starts.map((s) => s.name), stops: plan.stops.map((s) => `${s.dynoId}:${s.reason}`) }, 'applying formation');

    const work = [
      ...plan.stops.map((s) => this.stopDyno(s.dynoId, s.reason)),
      ...plan.starts.map((s) => this.startDyno(f, s, new Set(), spread)),
    ];
    const failures = (await Promise.allSettled(work)).flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    for (const step of plan.starts) for (const old of dynos.downAt(f.app, f.type, step.index)) dynos.forget(old.id);
    if (failures.length > 0) {
      const first = failures.find((e) => e instanceof SlipwayError && e.code === 'INSUFFICIENT_CAPACITY') ?? failures[0];
      const err = first instanceof SlipwayError ? first : new SlipwayError('INTERNAL', String(first), { cause: first });
      throw new SlipwayError(err.code, `${failures.length} of ${plan.starts.length} new ${f.type} dynos did not start: ${err.message}`, { cause: err });
    }
    // Answered once the formation and its dynos are in the store: a failover after the 200
    // keeps them.
    await this.deps.durable?.();
    return { app: f.app, type: f.type, quantity: f.quantity, dynos: dynos.views((r) => r.app === f.app && r.type === f.type && r.desired === 'run') };
  }

  /** Starts the dyno of one index, trying agents in placement's order (placement.ts; `spread`
   * holds the formation's dynos and gains this one) until one admits it; then stops the dynos
   * it replaces. */
  private async startDyno(f: Formation, step: StartStep, avoid: ReadonlySet<string> = new Set(), spread: Spread = new Spread()): Promise<string> {
    const { dynos, registry, commander, log } = this.deps;
    const tried = new Set<string>(avoid);
    for (;;) {
      const agent = this.placement.time(() => chooseAgent(registry.placementViews(), f.size.memoryMb, tried, spread));
      if (!agent) {
        const refused = tried.size > 0 ? ` (tried ${[...tried].join(', ')})` : '';
        throw new SlipwayError('INSUFFICIENT_CAPACITY', `no agent has ${f.size.memoryMb} MB free for ${f.app} ${step.name}${refused}`);
      }
      tried.add(agent.id);
      const spec = this.specFor(f, step);
      dynos.addPlaced(spec, agent.id, f.specKey);
      registry.reserve(agent.id, spec.id, f.size.memoryMb);
      spread.add(agent.id);
      // The placement is in the store before the agent hears of it: a leader that fails over
      // after the command leaves its successor knowing the dyno (no index placed twice).
      try {
        await this.deps.durable?.();
      } catch (err) {
        registry.release(agent.id, spec.id);
        spread.remove(agent.id);
        dynos.forget(spec.id);
        throw err;
      }
      let result: Result;
      try {
        result = await commander.sendCommand(agent.id, { type: 'start_dyno', dyno: spec });
      } catch (err) {
        // No answer: the agent may have admitted it or not. Want it stopped wherever it turns
        // up (now or at the agent's next hello) and place the index elsewhere.
        registry.release(agent.id, spec.id);
        spread.remove(agent.id);
        log.warn({ app: f.app, dyno: step.name, dynoId: spec.id, agentId: agent.id, err }, 'start_dyno unanswered; placing elsewhere');
        void this.stopDyno(spec.id, 'start unanswered');
        continue;
      }
      if (result.ok) {
        registry.admit(agent.id, spec.id);
        if (result.dyno) dynos.applyStatus(agent.id, result.dyno, 'result');
        log.info({ app: f.app, dyno: step.name, dynoId: spec.id, agentId: agent.id }, 'dyno admitted');
        if (step.replaces.length > 0) await this.preboot(f, step, spec.id);
        return spec.id;
      }
      registry.release(agent.id, spec.id);
      spread.remove(agent.id);
      dynos.forget(spec.id);
      const { code, message } = result.error;
      if (PLACE_ELSEWHERE.has(code)) {
        log.info({ app: f.app, dyno: step.name, agentId: agent.id, code }, 'agent refused the dyno; trying the next one');
        continue;
      }
      throw new SlipwayError(isErrorCode(code) ? code : 'INTERNAL', `agent ${agent.id} refused ${f.app} ${step.name}: ${message}`);
    }
  }

  /** Heroku's preboot: the dynos a replacement replaces leave the route table and get SIGTERM
   * only once the replacement is up and the router serves it. A replacement that is not up
   * within prebootWaitMs (it crashed, or boots slowly) leaves the old dynos serving: the
   * formation's next change (or the index's next replacement) stops them. */
  private async preboot(f: Formation, step: StartStep, newId: string): Promise<void> {
    const { dynos, log } = this.deps;
    const until = Date.now() + (this.deps.prebootWaitMs ?? PREBOOT_WAIT_MS);
    const routable = (): boolean => dynos.get(newId)?.state === 'up' && dynos.get(newId)?.endpoint !== undefined;
    const gone = (): boolean => { const s = dynos.get(newId)?.state; return s === undefined || s === 'down' || s === 'stopping'; };
    while (!routable() && !gone() && Date.now() < until) await new Promise((r) => setTimeout(r, PREBOOT_POLL_MS));
    // A worker (no port) is never routable: up is enough.
    const up = dynos.get(newId)?.state === 'up';
    if (!up) {
      log.warn({ app: f.app, dyno: step.name, dynoId: newId, state: dynos.get(newId)?.state, kept: step.replaces }, 'preboot: the replacement is not up; the dynos it replaces keep serving');
      return;
    }
    await this.settleRoutes();
    await Promise.all(step.replaces.map((old) => this.stopDyno(old, 'replaced')));
  }

  /** Waits for the router to serve the current table; a router that cannot is logged (the
   * stop goes ahead: a stuck router must not keep dynos running forever). */
  private async settleRoutes(): Promise<void> {
    if (!this.deps.routesSettled) return;
    try {
      await this.deps.routesSettled();
    } catch (err) {
      this.deps.log.warn({ err }, 'the router did not confirm the route table; going on');
    }
  }

  /** Marks the dyno unwanted (its route leaves the table at once), waits until the router no
   * longer sends it new requests, and asks its agent to stop it (the default grace applies):
   * no request is sent to a dyno after its SIGTERM. A failure is logged, not thrown: the dyno
   * stays unwanted and is stopped at the agent's next hello. */
  private async stopDyno(dynoId: string, reason: string, graceMs?: number): Promise<void> {
    const { dynos, commander, log } = this.deps;
    const record = dynos.markUnwanted(dynoId);
    if (!record || record.state === 'down') return;
    await this.settleRoutes();
    // The unwanted mark is in the store before the agent hears of it, and a deposed leader
    // (fenced) sends nothing.
    try {
      await this.deps.durable?.();
    } catch (err) {
      log.warn({ dynoId, err }, 'stop_dyno not sent: the change is not in the store');
      return;
    }
    try {
      const result = await commander.sendCommand(record.agentId, { type: 'stop_dyno', dynoId, ...(graceMs !== undefined ? { graceMs } : {}) });
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
    return this.specOf(f, id, step.name, step.attach);
  }

  private specOf(f: Formation, id: string, name: string, attach?: DynoAttachSpec): DynoSpec {
    const spec: DynoSpec = { id, app: f.app, type: f.type, name, size: f.size, command: f.command, env: f.env, slug: f.slug, stack: f.stack };
    if (f.release !== undefined) spec.release = f.release;
    if (attach) spec.attach = attach;
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
