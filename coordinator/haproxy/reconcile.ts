// Pure planning of the router's runtime API work: from an app's routes (what should serve)
// and HAProxy's `show servers state` / `show stat` (what does), the steps that make them
// agree; from the apps and `show map`, the host map's steps. A table maps each step to its
// runtime API commands. Nothing here talks to HAProxy, so every rule has a unit test
// (test/unit/coordinator/haproxy/reconcile.test.ts).
//
// The rules, in the order the steps come out (capacity first, so a release change adds the
// new dynos before the old ones stop taking requests):
// - a route without a server: `add server`, then `enable server` (2.6 adds it in maintenance);
// - a server of a route whose address differs: `set server ... addr ... port ...`;
// - a server of a route that is drained or in maintenance (its dyno came back): `state ready`;
// - a server without a route, in service: `state drain` (no new requests; those in flight
//   finish);
// - a drained server without a route: removed once it has no session and no queue, or once it
//   has drained for drainMaxMs; a server in maintenance without a route: removed.
import { serverAddress, type MapEntry, type ServerSpec } from './config.js';
import { draining, inMaintenance, type ServerSessions, type ServerState } from './state.js';

export type RemoveReason = 'idle' | 'drain-timeout' | 'maintenance';

export type Step =
  | { kind: 'add'; backend: string; server: string; address: string }
  | { kind: 'address'; backend: string; server: string; host: string; port: number }
  | { kind: 'ready'; backend: string; server: string }
  | { kind: 'drain'; backend: string; server: string }
  | { kind: 'remove'; backend: string; server: string; reason: RemoveReason }
  | { kind: 'map-add'; host: string; backend: string }
  | { kind: 'map-set'; host: string; backend: string }
  | { kind: 'map-del'; host: string };

export interface BackendPlanInput {
  backend: string;
  /** The app's routes as servers; every one has a valid name and address. */
  routes: ServerSpec[];
  /** HAProxy's servers of this backend. */
  servers: ServerState[];
  /** Sessions by `backend/server`; without it no drained server counts as idle. */
  sessions?: ReadonlyMap<string, ServerSessions>;
  /** When each drained server started draining (`backend/server` -> ms). */
  drainingSince: ReadonlyMap<string, number>;
  now: number;
  drainMaxMs: number;
}

export const serverKey = (backend: string, server: string): string => `${backend}/${server}`;

const bare = (host: string): string => host.replace(/^\[(.*)\]$/, '$1');

export function planBackend(input: BackendPlanInput): Step[] {
  const { backend } = input;
  const actual = new Map(input.servers.filter((s) => s.backend === backend).map((s) => [s.name, s]));
  const wanted = new Map(input.routes.map((r) => [r.name, r]));
  const first: Step[] = [];
  const then: Step[] = [];
  for (const route of wanted.values()) {
    const server = actual.get(route.name);
    if (!server) {
      const address = serverAddress(route.host, route.port);
      if (address) first.push({ kind: 'add', backend, server: route.name, address });
      continue;
    }
    if (server.addr !== bare(route.host) || server.port !== route.port) {
      first.push({ kind: 'address', backend, server: route.name, host: bare(route.host), port: route.port });
    }
    if (inMaintenance(server) || draining(server)) first.push({ kind: 'ready', backend, server: route.name });
  }
  for (const server of actual.values()) {
    if (wanted.has(server.name)) continue;
    const key = serverKey(backend, server.name);
    if (inMaintenance(server)) {
      then.push({ kind: 'remove', backend, server: server.name, reason: 'maintenance' });
    } else if (!draining(server)) {
      then.push({ kind: 'drain', backend, server: server.name });
    } else {
      const sessions = input.sessions?.get(key);
      const since = input.drainingSince.get(key) ?? input.now;
      if (sessions && sessions.current === 0 && sessions.queued === 0) then.push({ kind: 'remove', backend, server: server.name, reason: 'idle' });
      else if (input.now - since >= input.drainMaxMs) then.push({ kind: 'remove', backend, server: server.name, reason: 'drain-timeout' });
    }
  }
  return [...first, ...then];
}

/** The host map's steps. `set map` rewrites every entry of a key at once, so a wrong value is
 * never absent in between (as `del map` + `add map` would be). */
export function planMap(desired: MapEntry[], actual: ReadonlyMap<string, string[]>): Step[] {
  const steps: Step[] = [];
  const wanted = new Set<string>();
  for (const entry of desired) {
    wanted.add(entry.host);
    const values = actual.get(entry.host);
    if (!values || values.length === 0) steps.push({ kind: 'map-add', host: entry.host, backend: entry.backend });
    else if (values.some((v) => v !== entry.backend)) steps.push({ kind: 'map-set', host: entry.host, backend: entry.backend });
  }
  for (const host of actual.keys()) if (!wanted.has(host)) steps.push({ kind: 'map-del', host });
  return steps;
}

export interface Command {
  line: string;
  /** The answer of success: '' for none. */
  ok: RegExp | '';
}

const CHANGED = /changed|no need to change/;

/** The runtime API commands of each step, in order. */
export function commandsOf(step: Step, mapPath: string): Command[] {
  switch (step.kind) {
    case 'add': {
      const srv = serverKey(step.backend, step.server);
      return [{ line: `add server ${srv} ${step.address}`, ok: /New server registered/ }, { line: `enable server ${srv}`, ok: '' }];
    }
    case 'address':
      return [{ line: `set server ${serverKey(step.backend, step.server)} addr ${step.host} port ${step.port}`, ok: CHANGED }];
    case 'ready':
      return [{ line: `set server ${serverKey(step.backend, step.server)} state ready`, ok: '' }];
    case 'drain':
      return [{ line: `set server ${serverKey(step.backend, step.server)} state drain`, ok: '' }];
    case 'remove': {
      const srv = serverKey(step.backend, step.server);
      return [
        { line: `set server ${srv} state maint`, ok: '' },
        { line: `shutdown sessions server ${srv}`, ok: '' },
        { line: `del server ${srv}`, ok: /Server deleted/ },
      ];
    }
    case 'map-add':
      return [{ line: `add map ${mapPath} ${step.host} ${step.backend}`, ok: '' }];
    case 'map-set':
      return [{ line: `set map ${mapPath} ${step.host} ${step.backend}`, ok: '' }];
    case 'map-del':
      return [{ line: `del map ${mapPath} ${step.host}`, ok: '' }];
  }
}
