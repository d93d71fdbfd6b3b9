// `POST /slugs/prefetch {slug: {url, sha256, signature?}, agents?: [id]}`: warms the slug
// cache of the named agents (default: every connected agent) before a release is scaled, so
// dyno starts find the slug cached. Each agent answers at once whether it already had the slug;
// the download runs in the agent's background, and its capacity reports then list the slug.
// The signature goes to the agents as given: an agent that checks signatures verifies it
// before it extracts the slug.
import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { asSlipwayError, SlipwayError } from '../shared/errors.js';
import { AgentIdentity, SlugRef } from '../shared/protocol.js';
import type { CommandSender } from '../shared/coordinator-sdk/index.js';
import type { AgentRegistry } from './agent-registry.js';

/** At most this many agents named in one request (a guard, like MAX_QUANTITY). */
export const MAX_PREFETCH_AGENTS = 1000;

export const PrefetchBody = Type.Object({
  slug: SlugRef,
  agents: Type.Optional(Type.Array(AgentIdentity.properties.id, { minItems: 1, maxItems: MAX_PREFETCH_AGENTS, uniqueItems: true })),
}, { additionalProperties: false });
export type PrefetchBody = Static<typeof PrefetchBody>;

export type PrefetchOutcome =
  | { agent: string; ok: true; cached: boolean }
  | { agent: string; ok: false; error: { code: string; message: string } };

const checkBody = TypeCompiler.Compile(PrefetchBody);

export function parsePrefetchBody(body: unknown): PrefetchBody {
  if (!checkBody.Check(body)) {
    const first = checkBody.Errors(body).First();
    throw new SlipwayError('PROTOCOL_SCHEMA_VIOLATION', `prefetch body ${first ? `${first.path || '/'}: ${first.message}` : 'is invalid'}`);
  }
  return body;
}

/** Sends prefetch_slug to each target agent in parallel; one unreachable agent does not fail
 * the others (its outcome says why). */
export async function prefetchSlug(registry: AgentRegistry, commander: CommandSender, body: PrefetchBody): Promise<PrefetchOutcome[]> {
  const targets = body.agents ?? registry.views().filter((a) => a.connected).map((a) => a.id);
  return Promise.all(targets.map(async (agent): Promise<PrefetchOutcome> => {
    try {
      const slug = { url: body.slug.url, sha256: body.slug.sha256, ...(body.slug.signature !== undefined ? { signature: body.slug.signature } : {}) };
      const result = await commander.sendCommand(agent, { type: 'prefetch_slug', slug });
      if (result.ok) return { agent, ok: true, cached: result.slug?.cached ?? false };
      return { agent, ok: false, error: { code: result.error.code, message: result.error.message } };
    } catch (err) {
      const e = asSlipwayError(err);
      return { agent, ok: false, error: { code: e.code, message: e.message } };
    }
  }));
}
