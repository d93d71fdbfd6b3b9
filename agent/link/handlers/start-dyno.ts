import type { DynoManager } from '../../dynos/manager.js';
import type { CommandResults } from '../command-results.js';
import type { Handler } from './types.js';

/** Admits the dyno and answers at once with its `starting` status (or the refusal code);
 * progress arrives as events. A start for a dyno that convergence holds as unknown claims it. */
export function startDynoHandler(manager: DynoManager, results: CommandResults, claimed: (dynoId: string) => void = () => undefined): Handler<'start_dyno'> {
  return (msg, ctx) => {
    claimed(msg.dyno.id);
    const { result, repeated } = results.run(msg.id, () => ({ dyno: manager.start(msg.dyno) }));
    ctx.log.info({ commandId: msg.id, dynoId: msg.dyno.id, ok: result.ok, repeated, code: result.ok ? undefined : result.error.code }, 'start_dyno');
    ctx.send(result);
  };
}
