// What the slug store tells the agent's metrics and decision log (issue 14, items 1 and 3):
// hits, misses, download bytes and time, and each eviction with why that slug. Real HTTP
// server, real files; the observer and the decision log are the agent's own classes.
import t from 'tap';
import { startServer } from './fixtures/server.js';
import { storeFixture } from './fixtures/store.js';
import { sha256, tgz } from './fixtures/tarball.js';
import { AgentMetrics } from '../../../../agent/metrics/agent-metrics.js';
import { DecisionLog } from '../../../../agent/diagnostics/decisions.js';
import { realClock } from '../../../../agent/lib/clock.js';

function slugOf(n: number, kb: number) {
  const body = tgz([{ path: './app/', type: 'Directory' }, { path: './app/blob', body: Buffer.alloc(kb * 1024, n) }]);
  return { body, sha: sha256(body) };
}

t.test('misses, hits, downloads and an LRU eviction are counted; the eviction is a decision saying why', async (t) => {
  const s = [1, 2, 3].map((n) => slugOf(n, 100));
  const srv = await startServer(t, Object.fromEntries(s.map((x, i) => [`/s${i}`, { body: x.body }])));
  const metrics = new AgentMetrics();
  const decisions = new DecisionLog(realClock);
  const fx = await storeFixture(t);
  const store = fx.makeStore({ cache: { budgetBytes: 250 * 1024, floorBytes: 0 }, observer: metrics.slugObserver(), decisions });
  await store.init();
  const url = (i: number) => ({ url: `${srv.base}/s${i}`, sha256: s[i]!.sha });
  await store.ensure(url(0), { pin: 'web.1' });
  await new Promise((r) => setTimeout(r, 5));
  await store.ensure(url(1));
  await store.ensure(url(1));
  await new Promise((r) => setTimeout(r, 5));
  await store.ensure(url(2));
  t.equal(store.has(s[1]!.sha), false, 'the least recently used unpinned slug went');

  const json = Object.fromEntries((await metrics.registry.getMetricsAsJSON()).map((m) => [m.name, m.values]));
  const lookups = Object.fromEntries(json.slipway_slug_cache_lookups_total!.map((v) => [v.labels.result, v.value]));
  t.same(lookups, { hit: 1, miss: 3 });
  t.equal(json.slipway_slug_download_bytes_total![0]!.value, s.reduce((n, x) => n + x.body.length, 0), 'compressed bytes of the three downloads');
  t.ok(json.slipway_slug_download_seconds_total![0]!.value > 0, 'and their time');
  t.equal(json.slipway_slug_cache_evictions_total![0]!.value, 1);
  t.ok(json.slipway_slug_cache_evicted_bytes_total![0]!.value >= 100 * 1024, 'the evicted slug\'s bytes');

  const [evicted, ...more] = decisions.list().filter((d) => d.kind === 'slug_evicted');
  t.equal(more.length, 0, 'one eviction, one decision');
  t.match(evicted, { kind: 'slug_evicted', data: { sha256: s[1]!.sha, unpinned: 1, budgetBytes: 250 * 1024 } });
  t.match(evicted!.message, new RegExp(`^slug ${s[1]!.sha.slice(0, 12)} evicted: least recently used \\(1 of 1 unpinned.*over its 256000-byte budget`), evicted!.message);
});
