import t from 'tap';
import { CommandResults } from '../../../../agent/link/command-results.js';
import { SlipwayError } from '../../../../shared/errors.js';

t.test('a repeated command id replays the stored result without executing again', async (t) => {
  const r = new CommandResults();
  let runs = 0;
  const exec = () => { runs++; return {}; };
  const first = r.run('c1', exec);
  const second = r.run('c1', exec);
  t.equal(runs, 1);
  t.equal(first.repeated, false);
  t.equal(second.repeated, true);
  t.same(second.result, first.result);
});

t.test('failures are stored with their stable code', async (t) => {
  const r = new CommandResults();
  const { result } = r.run('c2', () => { throw new SlipwayError('INSUFFICIENT_CAPACITY', 'full'); });
  t.match(result, { ok: false, error: { code: 'INSUFFICIENT_CAPACITY', retryable: true } });
  const again = r.run('c2', () => ({}));
  t.match(again.result, { ok: false, error: { code: 'INSUFFICIENT_CAPACITY' } });
});

t.test('memory is bounded: the oldest ids are forgotten', async (t) => {
  const r = new CommandResults(2);
  let runs = 0;
  for (const id of ['a', 'b', 'c', 'a']) r.run(id, () => { runs++; return {}; });
  t.equal(runs, 4, 'a was forgotten after c and ran again');
});
