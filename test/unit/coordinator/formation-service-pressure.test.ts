// The coordinator's answer to a host under disk or descriptor pressure (agent/host/pressure.ts):
// a start_dyno refused with STATE_DIR_FULL, STATE_DIR_FAILING or AGENT_FD_LIMIT means "not on
// this host", so the dyno goes to the next agent, as for INSUFFICIENT_CAPACITY and HOST_DRAINING.
// Against a commander that answers like agents do (no sockets).
import t from 'tap';
import type { Capacity, DynoStatus, Result } from '../../../shared/protocol.js';
import type { CommandBody } from '../../../shared/coordinator-sdk/index.js';
import { AgentRegistry } from '../../../coordinator/agent-registry.js';
import { DynoTable } from '../../../coordinator/dyno-table.js';
import { RouteTable } from '../../../coordinator/route-table.js';
import { FormationService } from '../../../coordinator/formation-service.js';
import { MIB } from '../../../coordinator/placement.js';
import { createRootLogger } from '../../../shared/log.js';

const capacity = (allocatableMb: number): Capacity => ({
  memory: { totalBytes: allocatableMb * MIB, reservedBytes: 0, allocatableBytes: allocatableMb * MIB, committedBytes: 0, usedBytes: 0 },
  cpu: { cores: 2, load1: 0 }, dynoCount: 0, slugCache: { entries: 0, bytes: 0, budgetBytes: 0, freeBytes: 0, slugs: [] }, accepting: true,
});
const identity = (id: string) => ({ id, hostname: id, address: '10.0.0.1', version: '0.1.0', runtime: 'runc' });
const request = {
  app: 'shop', type: 'web', quantity: 1, size: { name: 'standard-1x', memoryMb: 512, cpuShares: 1024, pidsLimit: 256 },
  command: 'httpd', slug: { url: 'http://127.0.0.1:1/s.tgz', sha256: 'a'.repeat(64) }, env: {}, stack: 'busybox',
};

for (const code of ['STATE_DIR_FULL', 'STATE_DIR_FAILING', 'AGENT_FD_LIMIT']) {
  t.test(`${code} from the host with the most room: the dyno is placed on the next one`, async (t) => {
    const registry = new AgentRegistry();
    // `pressed` has more free memory, so placement asks it first.
    registry.attach(identity('pressed'), capacity(8192));
    registry.attach(identity('other'), capacity(4096));
    const dynos = new DynoTable(new RouteTable(), () => '10.0.0.1');
    const asked: string[] = [];
    let n = 0;
    const commander = {
      async sendCommand(agentId: string, command: CommandBody): Promise<Result> {
        const id = `c${++n}`;
        if (command.type !== 'start_dyno') return { type: 'result', id, ok: true };
        asked.push(agentId);
        if (agentId === 'pressed') return { type: 'result', id, ok: false, error: { code, message: 'the state dir is short of room', retryable: true } };
        const d = command.dyno;
        const status: DynoStatus = { id: d.id, app: d.app, type: d.type, name: d.name, state: 'starting', memoryMb: d.size.memoryMb, since: new Date().toISOString() };
        return { type: 'result', id, ok: true, dyno: status };
      },
    };
    const formations = new FormationService({ dynos, registry, commander, log: createRootLogger({ level: 'silent' }) });
    const result = await formations.apply(request);
    t.same(asked, ['pressed', 'other'], 'refused on the pressed host, then asked the next');
    t.same(result.dynos.map((d) => d.agentId), ['other'], 'the dyno runs on the other host');
  });
}
