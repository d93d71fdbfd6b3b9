// The route table: app -> the dynos the router may send requests to. Fed only from dyno
// states (DynoTable calls applyDynoState on every state it records), read by the dev router
// and GET /routes.
//
// Invariant: a dyno has a route exactly while its last known state is 'up' with an endpoint.
// 'up' is reported only once the dyno's port accepts TCP connections (the agent's contract),
// and 'stopping' is reported before SIGTERM, so the router never picks a dyno that is
// booting or shutting down. 'starting' also drops a route: a dyno restarting after a crash
// passes through it, and it has no endpoint then.
//
// When an agent's link drops, its routes stay: the dynos keep running while the link is
// down (DESIGN.md), and dropping them would turn a coordinator-side network blip into an
// outage of every app on that host. The agent's hello on reconnect carries the truth and
// corrects the table either way.
//
// Whoever holds connections to dynos (the dev router's pools) subscribes with onRemoved() and
// hears of every route the router may no longer pick: its dyno left the table, or its endpoint
// moved (the old route). Listeners run synchronously, inside the state change that caused it.
// onChanged() hears the app of every change at all (a route added, moved, renamed or removed),
// for a router that mirrors the whole table (coordinator/haproxy/).
import type { DynoStateName, Endpoint } from '../shared/protocol.js';

export interface Route {
  dynoId: string;
  name: string;
  host: string;
  port: number;
}

export interface RoutableDyno {
  id: string;
  app: string;
  name: string;
  state: DynoStateName;
  endpoint?: Endpoint;
}

/** Hosts that mean "every interface of the dyno's host": the agent's address is used instead. */
const UNSPECIFIED_HOSTS = new Set(['', '0.0.0.0', '::', '[::]']);

export type RouteRemovedListener = (route: Route) => void;
export type RoutesChangedListener = (app: string) => void;

export class RouteTable {
  private readonly byApp = new Map<string, Map<string, Route>>();
  /** Round-robin position per app; survives route changes (it is taken modulo the count). */
  private readonly cursor = new Map<string, number>();
  private readonly removedListeners = new Set<RouteRemovedListener>();
  private readonly changedListeners = new Set<RoutesChangedListener>();

  /** Calls `listener` with each route that leaves the table. Returns the unsubscribe. */
  onRemoved(listener: RouteRemovedListener): () => void {
    this.removedListeners.add(listener);
    return () => this.removedListeners.delete(listener);
  }

  /** Calls `listener` with the app after every change of its routes. Returns the unsubscribe. */
  onChanged(listener: RoutesChangedListener): () => void {
    this.changedListeners.add(listener);
    return () => this.changedListeners.delete(listener);
  }

  /** Adds, updates or removes the dyno's route from its state. `agentAddress` replaces an
   * unspecified endpoint host. Returns whether the table changed. */
  applyDynoState(dyno: RoutableDyno, agentAddress?: string): boolean {
    if (dyno.state === 'up' && dyno.endpoint) {
      const host = UNSPECIFIED_HOSTS.has(dyno.endpoint.host) && agentAddress ? agentAddress : dyno.endpoint.host;
      const route: Route = { dynoId: dyno.id, name: dyno.name, host, port: dyno.endpoint.port };
      let routes = this.byApp.get(dyno.app);
      if (!routes) this.byApp.set(dyno.app, (routes = new Map<string, Route>()));
      const old = routes.get(dyno.id);
      routes.set(dyno.id, route);
      if (old && (old.host !== route.host || old.port !== route.port)) this.removed(old);
      const changed = !old || old.host !== route.host || old.port !== route.port || old.name !== route.name;
      if (changed) for (const listener of this.changedListeners) listener(dyno.app);
      return changed;
    }
    return this.remove(dyno.app, dyno.id);
  }

  remove(app: string, dynoId: string): boolean {
    const routes = this.byApp.get(app);
    const route = routes?.get(dynoId);
    if (!routes || !route) return false;
    routes.delete(dynoId);
    if (routes.size === 0) {
      this.byApp.delete(app);
      this.cursor.delete(app);
    }
    this.removed(route);
    for (const listener of this.changedListeners) listener(app);
    return true;
  }

  private removed(route: Route): void {
    for (const listener of this.removedListeners) listener(route);
  }

  /** The app's routes in a stable order (dyno name, then id). */
  routesFor(app: string): Route[] {
    const routes = this.byApp.get(app);
    if (!routes) return [];
    return [...routes.values()].sort(byNameThenId);
  }

  /** The next route of the app in round-robin order, or undefined when it has none. */
  next(app: string): Route | undefined {
    const routes = this.routesFor(app);
    if (routes.length === 0) return undefined;
    const at = this.cursor.get(app) ?? 0;
    this.cursor.set(app, (at + 1) % routes.length);
    return routes[at % routes.length];
  }

  /** The dyno's route, if it has one. */
  routeOf(app: string, dynoId: string): Route | undefined {
    return this.byApp.get(app)?.get(dynoId);
  }

  /** Removes every route `keep` rejects (a new leadership term's restore). */
  retain(keep: (route: Route, app: string) => boolean): void {
    for (const [app, routes] of [...this.byApp]) {
      for (const route of [...routes.values()]) if (!keep(route, app)) this.remove(app, route.dynoId);
    }
  }

  hasRoutes(app: string): boolean {
    return (this.byApp.get(app)?.size ?? 0) > 0;
  }

  /** GET /routes: { [app]: Route[] }, apps in name order. */
  snapshot(): Record<string, Route[]> {
    const out: Record<string, Route[]> = {};
    for (const app of [...this.byApp.keys()].sort()) out[app] = this.routesFor(app);
    return out;
  }
}

function byNameThenId(a: Route, b: Route): number {
  const [ta, ia] = splitName(a.name);
  const [tb, ib] = splitName(b.name);
  if (ta !== tb) return ta < tb ? -1 : 1;
  if (ia !== ib) return ia - ib;
  return a.dynoId < b.dynoId ? -1 : a.dynoId > b.dynoId ? 1 : 0;
}

/** `web.12` -> ['web', 12], so web.2 sorts before web.10. */
function splitName(name: string): [string, number] {
  const dot = name.lastIndexOf('.');
  return [name.slice(0, dot), Number(name.slice(dot + 1))];
}
