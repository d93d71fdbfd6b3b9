import type { CommandResults } from '../command-results.js';
import type { Handler } from './types.js';

export interface SlugPrefetcher {
  has(sha256: string): boolean;
  ensure(ref: { url: string; sha256: string }): Promise<unknown>;
}

/** Answers at once whether the slug is cached; a miss downloads in the background (shared
 * with any dyno start that asks for the same slug meanwhile). Failures are logged with
 * their code; the coordinator sees the cache in the next capacity report. */
export function prefetchSlugHandler(slugs: SlugPrefetcher, results: CommandResults): Handler<'prefetch_slug'> {
  return (msg, ctx) => {
    const { result, repeated } = results.run(msg.id, () => {
      const cached = slugs.has(msg.slug.sha256);
      if (!cached) {
        slugs.ensure(msg.slug).then(
          () => ctx.log.info({ commandId: msg.id, sha256: msg.slug.sha256 }, 'slug prefetched'),
          (err: unknown) => ctx.log.warn({ commandId: msg.id, sha256: msg.slug.sha256, err }, 'slug prefetch failed'),
        );
      }
      return { slug: { sha256: msg.slug.sha256, cached } };
    });
    ctx.log.info({ commandId: msg.id, sha256: msg.slug.sha256, repeated }, 'prefetch_slug');
    ctx.send(result);
  };
}
