// The README's "Metrics" table lists every metric the agent registers, with its type, and
// nothing else: read from the registry (getMetricsAsJSON) with both collectors registered on
// fakes, compared with the table's rows.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { AgentMetrics } from '../../../../agent/metrics/agent-metrics.js';
import { registerDynoCollector } from '../../../../agent/metrics/dyno-collector.js';
import { registerAgentCollector } from '../../../../agent/metrics/agent-collector.js';
import type { LinkStatus } from '../../../../agent/link/session.js';

t.test('every registered metric is in the README table, with its type, and no other', async (t) => {
  const metrics = new AgentMetrics();
  registerDynoCollector(metrics, { list: () => [], memoryByDyno: () => [] }, 'runc');
  const link = { state: 'ready', reconnects: 0, unackedEvents: 0, droppedEvents: 0, journal: null } as unknown as LinkStatus;
  const agent = registerAgentCollector(metrics, { link: () => link, slugs: () => ({ entries: 0, bytes: 0 }), logs: () => ({ queued: 0, dropped: 0, shipped: 0 }) });
  t.teardown(() => agent.stop());
  const registered = Object.fromEntries((await metrics.registry.getMetricsAsJSON()).map((m) => [m.name, String(m.type)]));
  const readme = readFileSync(new URL('../../../../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('## Metrics\n'), readme.indexOf('\n## ', readme.indexOf('## Metrics\n') + 1));
  const listed = Object.fromEntries([...section.matchAll(/^\| `([a-z0-9_:]+)` \| (\w+) \|/gm)].map((m) => [m[1]!, m[2]!]));
  t.ok(Object.keys(registered).length > 30, 'the collectors registered their metrics');
  t.same(listed, registered);
});
