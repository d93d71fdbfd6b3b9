// The dispatcher's table: one small handler per inbound message type (welcome is part of
// the session's handshake and handled there).
import type { DynoManager } from '../../dynos/manager.js';
import type { EventOutbox } from '../outbox.js';
import { CommandResults } from '../command-results.js';
import type { HandlerTable } from './types.js';
import { startDynoHandler } from './start-dyno.js';
import { stopDynoHandler } from './stop-dyno.js';
import { prefetchSlugHandler, type SlugPrefetcher } from './prefetch-slug.js';
import { drainHandler, undrainHandler } from './drain.js';

export function buildHandlers(deps: { manager: DynoManager; outbox: EventOutbox; slugs: SlugPrefetcher; hostChanged?: () => void; claimed?: (dynoId: string) => void }): HandlerTable {
  const changed = deps.hostChanged ?? (() => undefined);
  const results = new CommandResults();
  return {
    ack: (msg) => deps.outbox.ack(msg.seq),
    start_dyno: startDynoHandler(deps.manager, results, deps.claimed),
    stop_dyno: stopDynoHandler(deps.manager, results),
    prefetch_slug: prefetchSlugHandler(deps.slugs, results),
    drain: drainHandler(deps.manager, results, changed),
    undrain: undrainHandler(deps.manager, results, changed),
    error: (msg, ctx) => ctx.log.warn({ code: msg.code, ref: msg.ref }, `coordinator reported an error: ${msg.message}`),
  };
}
