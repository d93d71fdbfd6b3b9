// The reference coordinator's side of the memory_warning event (agent-app.ts): accepted and
// logged, with nothing changed: the dyno stays as the agent last reported it and no command
// goes out (the warning is advisory). Real registry, dyno table and formation service; the
// command sender records what would go to the agent.
import t from 'tap';
import type { DynoStatus, Event } from '../../../shared/protocol.js';
import type { CommandBody } from '../../../shared/coordinator-sdk/index.js';
import { AgentRegistry } from '../../../coordinator/agent-registry.js';
import { createAgentApp } from '../../../coordinator/agent-app.js';
import { AppLogs } from '../../../coordinator/app-logs.js';
import { DynoTable } from '../../../coordinator/dyno-table.js';
import { FormationService } from '../../../coordinator/formation-service.js';
import { RouteTable } from '../../../coordinator/route-table.js';
import { captureLog, LEVEL } from '../../helpers/log-capture.js';

t.test('a memory_warning event is logged with its numbers and changes nothing', async (t) => {
  const { log, at } = captureLog();
  const registry = new AgentRegistry();
  const dynos = new DynoTable(new RouteTable(), () => '10.0.0.1');
  const sent: CommandBody[] = [];
  const formations = new FormationService({ dynos, registry, log, commander: { async sendCommand(_a: string, c: CommandBody) { sent.push(c); return { type: 'result', id: 'x', ok: true }; } } });
  const app = createAgentApp({ registry, dynos, formations, logs: new AppLogs(), stats: { staleEvents: 0 }, log });
  const up: DynoStatus = { id: 'shop-web-1-abc', app: 'shop', type: 'web', name: 'web.1', state: 'up', memoryMb: 512, since: '2026-12-02T06:00:00.000Z' };
  app.event('agent-1', { type: 'event', seq: 1, at: '2026-12-02T06:00:00.000Z', event: { kind: 'dyno_state', from: 'starting', dyno: up } });
  const warning: Event = {
    type: 'event', seq: 2, at: '2026-12-02T06:05:00.000Z',
    event: { kind: 'memory_warning', dynoId: up.id, app: 'shop', name: 'web.1', projectedMs: 360_000, workingSetBytes: 800 * 2 ** 20, limitBytes: 2 ** 30, slopeBytesPerSec: 650_000 },
  };
  app.event('agent-1', warning);
  t.match(at(LEVEL.warn), [{ msg: 'dyno memory warning', agentId: 'agent-1', seq: 2, dynoId: up.id, app: 'shop', name: 'web.1', projectedMs: 360_000, limitBytes: 2 ** 30 }]);
  t.match(dynos.get(up.id), { state: 'up' }, 'the dyno is as the agent last reported it');
  t.same(sent, [], 'no command: the warning is advisory');
});
