// FormationService's attached one-off dynos (`slipway run`), against a commander that answers
// like agents do (no sockets) and a real Rendezvous: the spec carries the agent's leg (session
// and its own secret), the answer the CLI's (path and another secret); only agents whose
// identity names the feature get such a spec (`attach`, and `attach-tty` for a terminal), since
// an older agent refuses a spec with a field it does not know; a run that cannot be placed
// leaves no session behind; a detached run's spec has no attach.
import t from 'tap';
import type { AgentFeature, Capacity, DynoSpec, Result } from '../../../shared/protocol.js';
import type { CommandBody } from '../../../shared/coordinator-sdk/index.js';
import { Rendezvous } from '../../../shared/coordinator-sdk/rendezvous.js';
import { RENDEZVOUS_PATH } from '../../../shared/attach.js';
import { AgentRegistry } from '../../../coordinator/agent-registry.js';
import { DynoTable } from '../../../coordinator/dyno-table.js';
import { RouteTable } from '../../../coordinator/route-table.js';
import { FormationService } from '../../../coordinator/formation-service.js';
import { MIB } from '../../../coordinator/placement.js';
import { createRootLogger } from '../../../shared/log.js';

const capacity = (): Capacity => ({
  memory: { totalBytes: 8192 * MIB, reservedBytes: 0, allocatableBytes: 8192 * MIB, committedBytes: 0, usedBytes: 0 },
  cpu: { cores: 2, load1: 0 }, dynoCount: 0, slugCache: { entries: 0, bytes: 0, budgetBytes: 0, freeBytes: 0, slugs: [] }, accepting: true,
});

function setup(agents: Record<string, AgentFeature[] | undefined>) {
  const registry = new AgentRegistry();
  for (const [id, features] of Object.entries(agents)) {
    registry.attach({ id, hostname: id, address: '10.0.0.1', version: '0.1.0', runtime: 'runc', ...(features ? { features } : {}) }, capacity());
  }
  const dynos = new DynoTable(new RouteTable(), () => '10.0.0.1');
  const starts: { agentId: string; dyno: DynoSpec }[] = [];
  const commander = {
    async sendCommand(agentId: string, command: CommandBody): Promise<Result> {
      if (command.type === 'start_dyno') {
        const d = command.dyno;
        starts.push({ agentId, dyno: d });
        return { type: 'result', id: 'c', ok: true, dyno: { id: d.id, app: d.app, type: d.type, name: d.name, state: 'starting', memoryMb: d.size.memoryMb, since: new Date().toISOString() } };
      }
      return { type: 'result', id: 'c', ok: true };
    },
  };
  const rendezvous = new Rendezvous({ log: createRootLogger({ level: 'silent' }) });
  const formations = new FormationService({ dynos, registry, commander, rendezvous, log: createRootLogger({ level: 'silent' }) });
  return { formations, starts, rendezvous };
}

const web = {
  app: 'shop', type: 'web', quantity: 0, size: { name: 'standard-1x', memoryMb: 512, cpuShares: 1024, pidsLimit: 256 },
  command: 'httpd', slug: { url: 'http://127.0.0.1:1/s.tgz', sha256: 'a'.repeat(64) }, env: { DATABASE_URL: 'postgres://x' }, stack: 'busybox',
};

t.test('an attached run: the agent gets its leg in the spec, the CLI its own, on an agent that can', async (t) => {
  const s = setup({ old: undefined, plain: ['attach'], full: ['attach', 'attach-tty'] });
  t.teardown(() => s.rendezvous.close());
  await s.formations.apply(web);
  for (let i = 0; i < 6; i++) {
    const view = await s.formations.runOneOff('shop', { command: 'cat', attach: { tty: false } });
    const start = s.starts.at(-1)!;
    t.not(start.agentId, 'old', 'never the agent that does not announce attach');
    t.match(start.dyno, { type: 'run', name: view.name, env: { DATABASE_URL: 'postgres://x' }, attach: { session: /^[a-f0-9]{32}$/, tty: false } });
    t.equal(view.attach?.path, RENDEZVOUS_PATH + start.dyno.attach!.session, 'the CLI dials the same session');
    t.not(view.attach?.secret, start.dyno.attach!.secret, 'with a secret of its own');
  }
  t.equal(s.rendezvous.stats().sessions, 6, 'a session per run');
  for (let i = 0; i < 4; i++) {
    await s.formations.runOneOff('shop', { command: 'sh', attach: { tty: true, cols: 100, rows: 30 } });
    t.equal(s.starts.at(-1)!.agentId, 'full', 'a terminal only where the runtime can hold one');
    t.match(s.starts.at(-1)!.dyno.attach, { tty: true, cols: 100, rows: 30 });
  }
  await s.formations.runOneOff('shop', { command: 'true' });
  t.equal(s.starts.at(-1)!.dyno.attach, undefined, 'a detached run has no attach');
});

t.test('no agent can attach: INSUFFICIENT_CAPACITY, and no session is left open', async (t) => {
  const s = setup({ old: undefined, plain: ['attach'] });
  t.teardown(() => s.rendezvous.close());
  await s.formations.apply(web);
  await t.rejects(s.formations.runOneOff('shop', { command: 'sh', attach: { tty: true } }), { code: 'INSUFFICIENT_CAPACITY' });
  t.equal(s.starts.length, 0, 'nothing was sent to an agent that cannot');
  t.equal(s.rendezvous.stats().sessions, 0, 'the session was cancelled');
});
