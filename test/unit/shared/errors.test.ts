// Keeps docs/errors.md and the code table in shared/errors.ts in step (fastify does this).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ERROR_CODES, SlipwayError, asSlipwayError } from '../../../shared/errors.js';

const doc = readFileSync(join(import.meta.dirname, '../../../docs/errors.md'), 'utf8');
const rows = [...doc.matchAll(/^\| `([A-Z0-9_]+)` \| (yes|no) \|/gm)].map((m) => ({ code: m[1]!, retryable: m[2] === 'yes' }));

t.test('every code is documented once, with its retry flag', async (t) => {
  t.same(rows.map((r) => r.code).sort(), Object.keys(ERROR_CODES).sort());
  for (const r of rows) t.equal(r.retryable, ERROR_CODES[r.code as keyof typeof ERROR_CODES].retryable, r.code);
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
