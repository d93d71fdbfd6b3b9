import t from 'tap';
import { parseRetryAfter, retryDelayMs, RETRY_AFTER_CAP_MS } from '../../../../agent/slugs/retry.js';
import { SlipwayError } from '../../../../shared/errors.js';

const policy = { attempts: 4, baseDelayMs: 1000, maxDelayMs: 3000 };
const transient = new SlipwayError('SLUG_FETCH_FAILED', 'HTTP 503');

t.test('transient failures back off exponentially with jitter, capped, for a bounded number of attempts', async (t) => {
  t.equal(retryDelayMs(1, transient, policy, () => 1), 1000);
  t.equal(retryDelayMs(2, transient, policy, () => 1), 2000);
  t.equal(retryDelayMs(3, transient, policy, () => 1), 3000, 'capped');
  t.equal(retryDelayMs(3, transient, policy, () => 0), 1500, 'jitter keeps at least half');
  t.equal(retryDelayMs(4, transient, policy, () => 1), undefined, 'no attempt after the last');
});

t.test('no retry on 403/404, checksum mismatch, corrupt or unsafe slugs, or a non-retryable fetch failure', async (t) => {
  for (const code of ['SLUG_FORBIDDEN', 'SLUG_NOT_FOUND', 'SLUG_CHECKSUM_MISMATCH', 'SLUG_CORRUPT', 'SLUG_UNSAFE_PATH', 'SLUG_TOO_LARGE'] as const) {
    t.equal(retryDelayMs(1, new SlipwayError(code, 'x'), policy), undefined, code);
  }
  t.equal(retryDelayMs(1, new SlipwayError('SLUG_FETCH_FAILED', 'HTTP 400', { retryable: false }), policy), undefined);
});

t.test('Retry-After is honoured, within a cap', async (t) => {
  t.equal(retryDelayMs(1, new SlipwayError('SLUG_FETCH_FAILED', '503', { retryAfterMs: 7000 }), policy, () => 1), 7000);
  t.equal(retryDelayMs(1, new SlipwayError('SLUG_FETCH_FAILED', '503', { retryAfterMs: 10 }), policy, () => 1), 1000, 'never shorter than the backoff');
  t.equal(retryDelayMs(1, new SlipwayError('SLUG_FETCH_FAILED', '503', { retryAfterMs: 3_600_000 }), policy), RETRY_AFTER_CAP_MS);
  t.equal(parseRetryAfter('3'), 3000);
  t.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4_000), 6000);
  t.equal(parseRetryAfter('soon'), undefined);
});
