import t from 'tap';
import { SeqLedger } from '../../../../shared/coordinator-sdk/seq-ledger.js';

t.test('events are accepted once per seq; the numbering survives reconnects of the same epoch', async (t) => {
  const ledger = new SeqLedger();
  t.equal(ledger.enter('a', 'epoch-one'), 0);
  t.same([1, 2, 2, 1, 3].map((s) => ledger.accept('a', s)), ['new', 'new', 'duplicate', 'duplicate', 'new']);
  t.equal(ledger.enter('a', 'epoch-one'), 3, 'a reconnect is welcomed with the last applied seq');
  t.equal(ledger.accept('a', 3), 'duplicate', 'a resent event is not applied again');
  t.equal(ledger.accept('a', 6), 'new', 'a gap is applied (the next hello reconciles)');
  t.equal(ledger.lastSeq('a'), 6);
});

t.test('a new epoch starts the numbering again', async (t) => {
  const ledger = new SeqLedger();
  ledger.enter('a', 'epoch-one');
  ledger.accept('a', 9);
  t.equal(ledger.enter('a', 'epoch-two'), 0);
  t.equal(ledger.accept('a', 1), 'new', 'seq 1 of the new numbering is not a duplicate of the old');
  t.equal(ledger.lastSeq('never-seen'), 0);
  t.equal(ledger.size, 1);
});
