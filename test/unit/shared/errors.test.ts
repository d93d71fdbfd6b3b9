// Keeps docs/errors.md and the code table in shared/errors.ts in step (fastify does this).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import { join } from 'node:path';
import { ERROR_CODES, SlipwayError, asSlipwayError, httpStatusOf, type ErrorCode } from '../../../shared/errors.js';

const doc = readFileSync(join(import.meta.dirname, '../../../docs/errors.md'), 'utf8');
const rows = [...doc.matchAll(/^\| `([A-Z0-9_]+)` \| (yes|no) \| (\d{3}) \| (.+) \|$/gm)]
  .map((m) => ({ code: m[1]!, retryable: m[2] === 'yes', httpStatus: Number(m[3]), meaning: m[4]! }));
/** The "HTTP statuses" table: status -> the codes it lists. */
const rules = [...doc.matchAll(/^\| (\d{3}) \| .+ \| ((?:`[A-Z0-9_]+`(?:, )?)+) \|$/gm)]
  .map((m) => ({ status: Number(m[1]), codes: [...m[2]!.matchAll(/`([A-Z0-9_]+)`/g)].map((c) => c[1]!) }));
const codes = Object.keys(ERROR_CODES).sort();

t.test('every code is documented once, with its retry flag, HTTP status and summary', async (t) => {
  t.same(rows.map((r) => r.code).sort(), codes);
  for (const r of rows) {
    const entry = ERROR_CODES[r.code as ErrorCode];
    t.same({ retryable: r.retryable, httpStatus: r.httpStatus, meaning: r.meaning }, { retryable: entry.retryable, httpStatus: entry.httpStatus, meaning: entry.summary }, r.code);
  }
});

t.test('every code has one error status, and the status rules list each code under its own status', async (t) => {
  for (const code of codes) {
    const status = httpStatusOf(code as ErrorCode);
    t.ok(status >= 400 && status <= 599 && STATUS_CODES[status] !== undefined, `${code}: ${status} is an HTTP error status`);
  }
  t.same(rules.flatMap((r) => r.codes).sort(), codes, 'each code is listed under exactly one status');
  for (const rule of rules) for (const code of rule.codes) t.equal(httpStatusOf(code as ErrorCode), rule.status, `${code} under ${rule.status}`);
});

t.test('one meaning per code: HTTP routing errors are not protocol or dyno errors', async (t) => {
  t.equal(httpStatusOf('HTTP_NOT_FOUND'), 404);
  t.equal(httpStatusOf('HTTP_METHOD_NOT_ALLOWED'), 405);
  t.equal(httpStatusOf('HTTP_BODY_TOO_LARGE'), 413);
  t.notOk(Object.hasOwn(ERROR_CODES, 'API_NOT_FOUND'), 'HTTP_NOT_FOUND is the one code for an unknown route');
});

t.test('errors carry code, retry flag and cause; unknown failures become INTERNAL', async (t) => {
  const cause = new Error('disk on fire');
  const e = new SlipwayError('SLUG_FETCH_FAILED', 'download failed', { cause });
  t.same(e.toWire(), { code: 'SLUG_FETCH_FAILED', message: 'download failed', retryable: true });
  t.equal(e.cause, cause);
  const wrapped = asSlipwayError(cause);
  t.equal(wrapped.code, 'INTERNAL');
  t.equal(asSlipwayError(e), e);
});
