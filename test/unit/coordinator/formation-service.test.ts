// FormationService's evacuation of a host that EC2 takes away, against a commander that answers
// like agents do (no sockets): replacements are started elsewhere and reported up before any
// stop_dyno goes to the host, the grace fits the deadline, a host with no room elsewhere still
// has its dynos stopped in time, a rebalance recommendation moves nothing, and one notice
// evacuates once.
import t from 'tap';
import type { Capacity, DynoStatus, Result } from '../../../shared/protocol.js';
import type { CommandBody } from '../../../shared/coordinator-sdk/index.js';
import { AgentRegistry } from '../../../coordinator/agent-registry.js';
import { DynoTable } from '../../../coordinator/dyno-table.js';
import { RouteTable } from '../../../coordinator/route-table.js';
import { EVACUATION_MARGIN_MS, FormationService, MIN_EVACUATION_GRACE_MS } from '../../../coordinator/formation-service.js';
import { MIB } from '../../../coordinator/placement.js';
import { createRootLogger } from '../../../shared/log.js';

const capacity = (accepting = true): Capacity => ({
  memory: { totalBytes: 8192 * MIB, reservedBytes: 0, allocatableBytes: 8192 * MIB, committedBytes: 0, usedBytes: 0 },
  cpu: { cores: 2, load1: 0 }, dynoCount: 0, slugCache: { entries: 0, bytes: 0, budgetBytes: 0, freeBytes: 0, slugs: [] }, accepting,
});
const identity = (id: string) => ({ id, hostname: id, address: '10.0.0.1', version: '0.1.0', runtime: 'runc' });

function setup(agents: string[]) {
  const registry = new AgentRegistry();
  for (const id of agents) registry.attach(identity(id), capacity());
  const dynos = new DynoTable(new RouteTable(), () => '10.0.0.1');
  const sent: { at: number; agentId: string; command: CommandBody }[] = [];
  const upAt: number[] = [];
  let n = 0;
  const commander = {
    async sendCommand(agentId: string, command: CommandBody): Promise<Result> {
      sent.push({ at: Date.now(), agentId, command });
      const id = `c${++n}`;
      if (command.type === 'start_dyno') {
        const d = command.dyno;
        const base: DynoStatus = { id: d.id, app: d.app, type: d.type, name: d.name, state: 'starting', memoryMb: d.size.memoryMb, since: new Date().toISOString() };
        // The dyno comes up 50 ms after admission, as the agent's event reports it.
        setTimeout(() => {
          upAt.push(Date.now());
          dynos.applyStatus(agentId, { ...base, state: 'up', since: new Date().toISOString() }, 'event');
        }, 50);
        return { type: 'result', id, ok: true, dyno: base };
      }
      return { type: 'result', id, ok: true };
    },
  };
  const formations = new FormationService({ dynos, registry, commander, log: createRootLogger({ level: 'silent' }) });
  return { registry, dynos, formations, sent, upAt };
}

const request = (quantity: number) => ({
  app: 'shop', type: 'web', quantity, size: { name: 'standard-1x', memoryMb: 512, cpuShares: 1024, pidsLimit: 256 },
  command: 'httpd', slug: { url: 'http://127.0.0.1:1/s.tgz', sha256: 'a'.repeat(64) }, env: {}, stack: 'busybox',
});

/** Places the formation on agent `a` only, then lets `others` connect. */
async function placedOnA(s: ReturnType<typeof setup>, quantity: number, others: string[]) {
  await s.formations.apply(request(quantity));
  for (const id of others) s.registry.attach(identity(id), capacity());
  await new Promise((r) => setTimeout(r, 80));
  s.sent.length = 0;
  s.upAt.length = 0;
  return s.dynos.on('a').map((r) => r.id);
}

t.test('spot interruption: replacements on another host are up before the host gets stop_dyno, with a grace that fits', async (t) => {
  const s = setup(['a']);
  const old = await placedOnA(s, 2, ['b']);
  t.equal(old.length, 2);
  const deadline = Date.now() + 25_000;
  const notice = { notice: 'spot_interruption' as const, action: 'terminate' as const, deadline: new Date(deadline).toISOString(), noticedAt: new Date().toISOString() };
  s.registry.setNotice('a', notice);
  await s.formations.hostNotice('a', notice);
  const starts = s.sent.filter((c) => c.command.type === 'start_dyno');
  const stops = s.sent.filter((c) => c.command.type === 'stop_dyno');
  t.same(starts.map((c) => c.agentId), ['b', 'b'], 'the replacements go elsewhere');
  t.same(stops.map((c) => c.agentId).sort(), ['a', 'a']);
  t.same(stops.map((c) => (c.command as { dynoId: string }).dynoId).sort(), [...old].sort(), "the host's dynos are stopped");
  t.equal(s.upAt.length, 2, 'both replacements came up');
  t.ok(Math.min(...stops.map((c) => c.at)) >= Math.max(...s.upAt), 'stops go out after the replacements came up');
  for (const c of stops) {
    const grace = (c.command as { graceMs?: number }).graceMs!;
    // The grace is computed a moment before the command is sent (c.at): allow that moment.
    t.ok(c.at + grace <= deadline - EVACUATION_MARGIN_MS + 100 && grace > 14_000, `grace ${grace} ms fits the deadline (min(30 s, time left - 10 s))`);
  }
  t.same(s.dynos.wantedOf('shop', 'web').map((r) => r.agentId), ['b', 'b'], 'the formation is whole on the other host');
  await s.formations.hostNotice('a', notice);
  t.equal(s.sent.length, 4, 'the same notice again evacuates nothing more');
});

t.test('no room elsewhere: the dynos still get stopped before the deadline, with what grace is left', async (t) => {
  const s = setup(['a']);
  await placedOnA(s, 1, []);
  // Wait bound: deadline - margin - the least grace = 300 ms from now.
  const deadline = Date.now() + EVACUATION_MARGIN_MS + MIN_EVACUATION_GRACE_MS + 300;
  const notice = { notice: 'terminating' as const, deadline: new Date(deadline).toISOString(), noticedAt: new Date().toISOString() };
  s.registry.setNotice('a', notice);
  const began = Date.now();
  await s.formations.hostNotice('a', notice);
  t.same(s.sent.map((c) => c.command.type), ['stop_dyno'], 'no replacement could start; the stop still went');
  t.ok(Date.now() - began < 2000, 'waited no longer than the bound');
  const grace = (s.sent[0]!.command as { graceMs?: number }).graceMs!;
  t.ok(grace <= MIN_EVACUATION_GRACE_MS + 300 && grace > MIN_EVACUATION_GRACE_MS - 1000, `grace ${grace} ms: what is left after the margin`);
});

t.test('a rebalance recommendation moves nothing; placement prefers other hosts', async (t) => {
  const s = setup(['a']);
  await placedOnA(s, 1, ['b']);
  const notice = { notice: 'rebalance' as const, noticeTime: new Date().toISOString(), noticedAt: new Date().toISOString() };
  s.registry.setNotice('a', notice);
  await s.formations.hostNotice('a', notice);
  t.same(s.sent, [], 'no command');
  await s.formations.apply(request(2));
  t.same(s.sent.filter((c) => c.command.type === 'start_dyno').map((c) => c.agentId), ['b'], 'the next dyno goes to the host without the recommendation');
});
