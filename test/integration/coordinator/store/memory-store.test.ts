// The store conformance suite (test/helpers/store-conformance.ts) against the in-memory store: several
// MemoryStore objects over one MemoryStoreState are coordinators of one "database".
import t from 'tap';
import { MemoryStore, MemoryStoreState } from '../../../../coordinator/store/memory-store.js';
import { storeConformance } from '../../../helpers/store-conformance.js';

storeConformance(t, () => {
  const state = new MemoryStoreState();
  return Promise.resolve(() => new MemoryStore(state));
});

t.test('a store of its own elects its only coordinator at once', async (t) => {
  const store = new MemoryStore();
  t.equal(await store.leaderLock().tryAcquire(), true, 'nobody else wants the lock');
  await store.close();
  try {
    await store.load();
    t.fail('a closed store loads');
  } catch (err) {
    t.equal((err as { code?: string }).code, 'STORE_UNAVAILABLE', 'a closed store is unavailable');
  }
});
