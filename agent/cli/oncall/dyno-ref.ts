// How the person on call names a dyno: its id (`3f2a...`), its name (`web.1`) or, when two apps
// on the host each have a `web.1`, `APP/web.1`. Resolved against `GET /v1/dynos`.
import { SlipwayError } from '../../../shared/errors.js';

export interface NamedDyno {
  id: string;
  name: string;
  app: string;
}

/** The dyno `ref` names; DYNO_NOT_FOUND when none does, CONFIG_INVALID when a bare name is two
 * apps' (the message names them). */
export function resolveDyno<D extends NamedDyno>(dynos: readonly D[], ref: string): D {
  const byId = dynos.find((d) => d.id === ref);
  if (byId) return byId;
  const slash = ref.indexOf('/');
  const [app, name] = slash > 0 ? [ref.slice(0, slash), ref.slice(slash + 1)] : [undefined, ref];
  const named = dynos.filter((d) => d.name === name && (app === undefined || d.app === app));
  if (named.length === 1) return named[0]!;
  if (named.length > 1) {
    throw new SlipwayError('CONFIG_INVALID', `${ref} names ${named.length} dynos on this host (apps ${named.map((d) => d.app).join(', ')}): give APP/${name} or the dyno's id`);
  }
  throw new SlipwayError('DYNO_NOT_FOUND', `no dyno ${ref} on this host (slipway-agent dynos lists them)`);
}
