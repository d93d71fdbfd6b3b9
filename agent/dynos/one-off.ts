// Heroku's one-off dynos (`heroku run`, process type `run`, named run.N): never restarted and
// never cycled. How the words after `--` become the command: shared/shell-quote.ts.
import type { DynoSpec } from '../../shared/protocol.js';

export { oneOffCommand } from '../../shared/shell-quote.js';

export function isOneOffDyno(spec: Pick<DynoSpec, 'type'>): boolean {
  return spec.type === 'run';
}
