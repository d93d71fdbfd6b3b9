import type { DynoManager } from '../../dynos/manager.js';
import type { CommandResults } from '../command-results.js';
import type { Handler } from './types.js';

/** Begins the graceful stop and answers with the `stopping` status; `down` follows as an event. */
export function stopDynoHandler(manager: DynoManager, results: CommandResults): Handler<'stop_dyno'> {
  return (msg, ctx) => {
    const { result, repeated } = results.run(msg.id, () => {
      const { status, done } = manager.stop(msg.dynoId, msg.graceMs);
      done.catch((err: unknown) => ctx.log.error({ err, dynoId: msg.dynoId }, 'stop failed'));
      return { dyno: status };
    });
    ctx.log.info({ commandId: msg.id, dynoId: msg.dynoId, ok: result.ok, repeated }, 'stop_dyno');
    ctx.send(result);
  };
}
