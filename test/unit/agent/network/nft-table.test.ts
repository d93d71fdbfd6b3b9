// The one writer of the agent's nftables table (nft-table.ts), over recorded commands: writes
// never overlap, route changes asked for meanwhile share one transaction, and a failed update
// rebuilds the table whole.
import t from 'tap';
import { NftTable } from '../../../../agent/network/nft-table.js';
import type { NetCommands } from '../../../../agent/network/commands.js';
import { quietLogger } from '../../../helpers/host.js';

const settings = { table: 'slipway', bridge: 'slipway0', subnet: '100.72.0.0/16', metadataAddresses: ['169.254.169.254'] };

function recorder(fail?: (script: string) => boolean) {
  const scripts: string[] = [];
  let running = 0;
  let overlapped = false;
  const cmd: NetCommands = {
    ip: async () => ({ code: 0, stdout: '', stderr: '' }),
    nft: async (script) => {
      running += 1;
      if (running > 1) overlapped = true;
      await new Promise((r) => setTimeout(r, 5));
      running -= 1;
      scripts.push(script);
      if (fail?.(script)) throw new Error('nft failed');
      return { code: 0, stdout: '', stderr: '' };
    },
    nftJson: async () => ({}),
  };
  return { cmd, scripts, overlapped: () => overlapped };
}

t.test('100 route changes at once: no two nft processes at a time, a handful of transactions', async (t) => {
  const r = recorder();
  const table = new NftTable(settings, r.cmd, quietLogger());
  await table.apply(new Map());
  const ops = [];
  for (let i = 0; i < 100; i++) ops.push(table.route(20000 + i, `100.72.0.${i + 2}`));
  await Promise.all(ops);
  t.notOk(r.overlapped(), 'writes never overlap');
  t.ok(r.scripts.length <= 3, `${r.scripts.length} nft runs for 1 apply + 100 routes`);
  t.equal(table.known.size, 100);
  await Promise.all([...table.known.keys()].map((p) => table.unroute(p)));
  t.equal(table.known.size, 0, 'all unrouted');
  t.match(r.scripts.at(-1)!, /delete element inet slipway web \{ 20099 \}/, 'deletes in one transaction');
});

t.test('a route and its removal in one batch: the last word wins; unknown ports are not deleted', async (t) => {
  const r = recorder();
  const table = new NftTable(settings, r.cmd, quietLogger());
  await Promise.all([table.route(20000, '100.72.0.2'), table.unroute(20000), table.unroute(20001)]);
  t.same(r.scripts, [], 'nothing to write: the port was never in the kernel');
  await table.route(20000, '100.72.0.2');
  await Promise.all([table.unroute(20000), table.route(20000, '100.72.0.9')]);
  t.match(r.scripts.at(-1)!, /delete element inet slipway web \{ 20000 \}\nadd element inet slipway web \{ 20000 : 100\.72\.0\.9 \}/);
  t.equal(table.known.get(20000), '100.72.0.9');
});

t.test('a failed update (the table was edited behind our back) rebuilds the table with the wanted routes', async (t) => {
  const r = recorder((s) => s.startsWith('add element'));
  const table = new NftTable(settings, r.cmd, quietLogger());
  await table.route(20000, '100.72.0.2');
  t.match(r.scripts.at(-1)!, /^table inet slipway\ndelete table inet slipway\n/, 'rebuilt whole');
  t.match(r.scripts.at(-1)!, /elements = \{ 20000 : 100\.72\.0\.2 \}/, 'with the route');
  t.equal(table.known.get(20000), '100.72.0.2');
});
