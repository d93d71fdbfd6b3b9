// The leader's write-behind (coordinator/store/store-writer.ts) over a real MemoryStore:
// coalescing by key, group commit, flushed() as the durability point, retries while the store
// fails, and the end of a term at STORE_FENCED.
import t from 'tap';
import { SlipwayError } from '../../../../shared/errors.js';
import { MemoryStore } from '../../../../coordinator/store/memory-store.js';
import { StoreWriter, writeKey } from '../../../../coordinator/store/store-writer.js';
import type { CoordinatorStore, StoredDyno, StoreWrite } from '../../../../coordinator/store/store.js';
import { createRootLogger } from '../../../../shared/log.js';

const log = createRootLogger({ name: 'store-writer-test', level: 'silent' });

function dyno(id: string, state: StoredDyno['state'] = 'starting'): StoredDyno {
  return { id, app: 'shop', type: 'web', name: 'web.1', index: 1, agentId: 'agent-a', state, since: '2026-12-02T00:00:00.000Z', memoryMb: 512, desired: 'run', specKey: 'k1' };
}

/** The store's batches as write() saw them, and a switch to make the next writes fail. */
function observed(store: CoordinatorStore): { store: CoordinatorStore; batches: StoreWrite[][]; failNext: (n: number) => void } {
  const batches: StoreWrite[][] = [];
  let failures = 0;
  const wrapped = Object.create(store) as CoordinatorStore;
  wrapped.write = async (epoch, writes) => {
    if (failures > 0) {
      failures--;
      throw new SlipwayError('STORE_UNAVAILABLE', 'connection refused (test)');
    }
    batches.push([...writes]);
    return store.write(epoch, writes);
  };
  return { store: wrapped, batches, failNext: (n) => { failures = n; } };
}

t.test('changes of one key coalesce; a batch carries the last change of each key; flushed() means stored', async (t) => {
  const base = new MemoryStore();
  await base.migrate();
  const epoch = await base.claimEpoch('c1');
  const { store, batches } = observed(base);
  const writer = new StoreWriter({ store, epoch, log, onFenced: () => t.fail('not fenced') });
  writer.put({ kind: 'dyno', dyno: dyno('d1', 'starting') });
  writer.put({ kind: 'dyno', dyno: dyno('d2', 'starting') });
  writer.put({ kind: 'dyno', dyno: dyno('d1', 'up') });
  await writer.flushed();
  t.equal(batches.length, 1, 'one transaction for the three changes');
  t.same(batches[0]?.map(writeKey), ['dyno:d2', 'dyno:d1'], 'd1 once, in the order of its last change');
  const loaded = await base.load();
  t.same(loaded.dynos.map((d) => [d.id, d.state]).sort(), [['d1', 'up'], ['d2', 'starting']]);
  writer.put({ kind: 'dyno_deleted', id: 'd2' });
  await writer.flushed();
  t.same((await base.load()).dynos.map((d) => d.id), ['d1']);
  await writer.close();
});

t.test('a store that fails is retried with the batch merged under newer changes; waiters wait for it', async (t) => {
  const base = new MemoryStore();
  await base.migrate();
  const epoch = await base.claimEpoch('c1');
  const { store, batches, failNext } = observed(base);
  const writer = new StoreWriter({ store, epoch, log, onFenced: () => t.fail('not fenced'), retryMinMs: 10, retryMaxMs: 20 });
  failNext(2);
  writer.put({ kind: 'dyno', dyno: dyno('d1', 'starting') });
  const first = writer.flushed();
  await new Promise((r) => setTimeout(r, 15));
  writer.put({ kind: 'dyno', dyno: dyno('d1', 'up') });
  await first;
  await writer.flushed();
  t.equal(writer.stats.retries, 2);
  t.same((await base.load()).dynos.map((d) => d.state), ['up'], 'the newer change won');
  t.ok(batches.length >= 1);
  await writer.close();
});

t.test('fenced: the waiters fail with STORE_FENCED, onFenced runs once, later puts are dropped', async (t) => {
  const base = new MemoryStore();
  await base.migrate();
  const old = await base.claimEpoch('c1');
  const writer = new StoreWriter({ store: base, epoch: old, log, onFenced: () => fenced++ });
  let fenced = 0;
  writer.put({ kind: 'dyno', dyno: dyno('d1') });
  await writer.flushed();
  await base.claimEpoch('c2');
  writer.put({ kind: 'dyno', dyno: dyno('d1', 'up') });
  await t.rejects(writer.flushed(), { code: 'STORE_FENCED' });
  t.equal(fenced, 1);
  writer.put({ kind: 'dyno', dyno: dyno('d9') });
  await t.rejects(writer.flushed(), { code: 'STORE_FENCED' });
  t.same((await base.load()).dynos.map((d) => [d.id, d.state]), [['d1', 'starting']], "nothing of the deposed leader's after the claim");
});

t.test('flushed() is bounded: a store that stays down fails the waiter with STORE_UNAVAILABLE, the change stays queued', async (t) => {
  const base = new MemoryStore();
  await base.migrate();
  const epoch = await base.claimEpoch('c1');
  const { store, failNext } = observed(base);
  const writer = new StoreWriter({ store, epoch, log, onFenced: () => t.fail('not fenced'), retryMinMs: 20, retryMaxMs: 20, waitTimeoutMs: 100 });
  failNext(1_000);
  writer.put({ kind: 'dyno', dyno: dyno('d1') });
  await t.rejects(writer.flushed(), { code: 'STORE_UNAVAILABLE' });
  failNext(0);
  await writer.flushed();
  t.same((await base.load()).dynos.map((d) => d.id), ['d1'], 'written once the store is back');
  await writer.close();
});
