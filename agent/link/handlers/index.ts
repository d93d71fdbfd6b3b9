// The dispatcher's table: one small handler per inbound message type (welcome is part of
// the session's handshake and handled there).
import type { DynoManager } from '../../dynos/manager.js';
import type { EventOutbox } from '../outbox.js';
import { CommandResults } from '../command-results.js';
import type { Handler, HandlerTable } from './types.js';
import { startDynoHandler } from './start-dyno.js';
import { stopDynoHandler } from './stop-dyno.js';
import { prefetchSlugHandler, type SlugPrefetcher } from './prefetch-slug.js';
import { drainHandler, undrainHandler } from './drain.js';

/** Each command's result as it is sent: its type and ok (agent/metrics/agent-metrics.ts). */
export type CommandCounter = (type: string, ok: boolean) => void;

/** `handler`, with each result it sends counted; the handler itself is unchanged. */
function counted<T extends CommandType>(type: T, handler: Handler<T>, count: CommandCounter | undefined): Handler<T> {
  if (!count) return handler;
  return (msg, ctx) => handler(msg, { ...ctx, send: (reply) => {
    if (reply.type === 'result') count(type, reply.ok);
    ctx.send(reply);
  } });
}
type CommandType = 'start_dyno' | 'stop_dyno' | 'prefetch_slug' | 'drain' | 'undrain';

export function buildHandlers(deps: { manager: DynoManager; outbox: EventOutbox; slugs: SlugPrefetcher; hostChanged?: () => void; claimed?: (dynoId: string) => void; commands?: CommandCounter }): HandlerTable {
  const changed = deps.hostChanged ?? (() => undefined);
  const results = new CommandResults();
  const c = deps.commands;
  return {
    ack: (msg) => deps.outbox.ack(msg.seq),
    start_dyno: counted('start_dyno', startDynoHandler(deps.manager, results, deps.claimed), c),
    stop_dyno: counted('stop_dyno', stopDynoHandler(deps.manager, results), c),
    prefetch_slug: counted('prefetch_slug', prefetchSlugHandler(deps.slugs, results), c),
    drain: counted('drain', drainHandler(deps.manager, results, changed), c),
    undrain: counted('undrain', undrainHandler(deps.manager, results, changed), c),
    error: (msg, ctx) => ctx.log.warn({ code: msg.code, ref: msg.ref }, `coordinator reported an error: ${msg.message}`),
  };
}
