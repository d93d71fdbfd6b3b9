import type { DynoManager } from '../../dynos/manager.js';
import type { CommandResults } from '../command-results.js';
import type { Handler } from './types.js';

/** Admits the dyno and answers at once with its `starting` status (or the refusal code);
 * progress arrives as events. */
export function startDynoHandler(manager: DynoManager, results: CommandResults): Handler<'start_dyno'> {
  return (msg, ctx) => {
    const { result, repeated } = results.run(msg.id, () => ({ dyno: manager.start(msg.dyno) }));
    ctx.log.info({ commandId: msg.id, dynoId: msg.dyno.id, ok: result.ok, repeated, code: result.ok ? undefined : result.error.code }, 'start_dyno');
    ctx.send(result);
  };
}
