import type { DynoManager } from '../../dynos/manager.js';
import type { CommandResults } from '../command-results.js';
import type { Handler } from './types.js';

/** `drain` and `undrain`: the host's admission switch. Answered at once with the host's new
 * state; the capacity report that follows carries `accepting` to every placement decision. */
export function drainHandler(manager: DynoManager, results: CommandResults, changed: () => void): Handler<'drain'> {
  return (msg, ctx) => {
    const { result, repeated } = results.run(msg.id, () => ({
      host: manager.drain({ ...(msg.stopDynos !== undefined ? { stopDynos: msg.stopDynos } : {}), ...(msg.graceMs !== undefined ? { graceMs: msg.graceMs } : {}) }),
    }));
    ctx.log.info({ commandId: msg.id, stopDynos: msg.stopDynos ?? false, repeated }, 'drain');
    ctx.send(result);
    changed();
  };
}

export function undrainHandler(manager: DynoManager, results: CommandResults, changed: () => void): Handler<'undrain'> {
  return (msg, ctx) => {
    const { result, repeated } = results.run(msg.id, () => ({ host: manager.undrain() }));
    ctx.log.info({ commandId: msg.id, repeated }, 'undrain');
    ctx.send(result);
    changed();
  };
}
