import t from 'tap';
import { MAX_RETRY_AFTER_MS, retryAfterFromHeader, retryAfterFromReason, retryAfterReason } from '../../../shared/link-close.js';

t.test('a close reason naming a redial time round-trips and fits a close frame', async (t) => {
  const reason = retryAfterReason('coordinator restarting', 12_345.6);
  t.equal(retryAfterFromReason(reason), 12_346);
  t.ok(Buffer.byteLength(retryAfterReason('x'.repeat(500), MAX_RETRY_AFTER_MS)) <= 123, 'within the 123-byte close reason limit');
});

t.test('reasons without a time, or with a malformed one, name none; huge times are capped', async (t) => {
  t.equal(retryAfterFromReason('coordinator shutting down'), undefined);
  t.equal(retryAfterFromReason('retry-after-ms=abc'), undefined);
  t.equal(retryAfterFromReason('xretry-after-ms=5'), undefined, 'only as its own token');
  t.equal(retryAfterFromReason('retry-after-ms=999999999'), MAX_RETRY_AFTER_MS);
});

t.test('Retry-After headers in delta seconds', async (t) => {
  t.equal(retryAfterFromHeader('3'), 3_000);
  t.equal(retryAfterFromHeader(['7']), 7_000);
  t.equal(retryAfterFromHeader('Wed, 21 Oct 2015 07:28:00 GMT'), undefined, 'HTTP dates are not honoured');
  t.equal(retryAfterFromHeader(undefined), undefined);
  t.equal(retryAfterFromHeader('100000'), MAX_RETRY_AFTER_MS);
});
