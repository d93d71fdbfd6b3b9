// The exit record's lines: the shipper's and the log file's, merged in time order, each once.
import t from 'tap';
import { lineTime, mergeLines } from '../../../../agent/dynos/exit-record-hook.js';

t.test('a line\'s time, from conmon\'s nanoseconds with an offset and from the agent\'s Z', async (t) => {
  t.equal(lineTime('2026-12-02T14:39:33.903486608+00:00 app[web.1]: hi'), Date.parse('2026-12-02T14:39:33.903Z'));
  t.equal(lineTime('2026-12-02T15:39:33.903486608+01:00 app[web.1]: hi'), Date.parse('2026-12-02T14:39:33.903Z'), 'a local offset');
  t.equal(lineTime('2026-12-02T14:39:34.001Z slipway[web.1]: Process exited with status 3'), Date.parse('2026-12-02T14:39:34.001Z'));
  t.ok(Number.isNaN(lineTime('garbage')));
});

t.test('merged in time order, each line once; lines of one instant keep their order', async (t) => {
  const shipper = [
    '2026-12-02T14:39:33.100000000+00:00 app[web.1]: one',
    '2026-12-02T14:39:34.001Z slipway[web.1]: Process exited with status 3',
  ];
  const file = [
    '2026-12-02T14:39:33.100000000+00:00 app[web.1]: one',
    '2026-12-02T14:39:33.900000000+00:00 app[web.1]: two',
    '2026-12-02T14:39:33.900000000+00:00 app[web.1]: three',
  ];
  t.same(mergeLines(shipper, file), [
    '2026-12-02T14:39:33.100000000+00:00 app[web.1]: one',
    '2026-12-02T14:39:33.900000000+00:00 app[web.1]: two',
    '2026-12-02T14:39:33.900000000+00:00 app[web.1]: three',
    '2026-12-02T14:39:34.001Z slipway[web.1]: Process exited with status 3',
  ]);
  t.same(mergeLines([], []), []);
});
