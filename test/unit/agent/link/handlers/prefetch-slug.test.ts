import t from 'tap';
import { prefetchSlugHandler } from '../../../../../agent/link/handlers/prefetch-slug.js';
import { CommandResults } from '../../../../../agent/link/command-results.js';
import type { AgentMessage } from '../../../../../shared/protocol.js';
import { quietLogger } from '../../../../helpers/host.js';

const sha = 'c'.repeat(64);

t.test('answers at once; a miss downloads in the background once per command id', async (t) => {
  const fetched: string[] = [];
  let cached = false;
  const slugs = { has: () => cached, ensure: async (ref: { sha256: string }) => { fetched.push(ref.sha256); } };
  const handler = prefetchSlugHandler(slugs, new CommandResults());
  const sent: AgentMessage[] = [];
  const ctx = { send: (m: AgentMessage) => sent.push(m), log: quietLogger() };
  const msg = { type: 'prefetch_slug' as const, id: 'p1', slug: { url: 'http://x/s.tgz', sha256: sha } };
  handler(msg, ctx);
  t.same(sent, [{ type: 'result', id: 'p1', ok: true, slug: { sha256: sha, cached: false } }]);
  handler(msg, ctx);
  t.same(fetched, [sha], 'a repeated id does not download again');
  cached = true;
  handler({ ...msg, id: 'p2' }, ctx);
  t.same(sent.at(-1), { type: 'result', id: 'p2', ok: true, slug: { sha256: sha, cached: true } });
  t.same(fetched, [sha], 'a cached slug is not fetched');
});

t.test('a failing prefetch is logged, never thrown into the dispatcher', async (t) => {
  const slugs = { has: () => false, ensure: async () => { throw new Error('boom'); } };
  const handler = prefetchSlugHandler(slugs, new CommandResults());
  const sent: AgentMessage[] = [];
  t.doesNotThrow(() => handler({ type: 'prefetch_slug', id: 'p3', slug: { url: 'http://x', sha256: sha } }, { send: (m) => sent.push(m), log: quietLogger() }));
  await new Promise((r) => setImmediate(r));
  t.match(sent, [{ ok: true }]);
});
