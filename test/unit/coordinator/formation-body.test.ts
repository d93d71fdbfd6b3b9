import t from 'tap';
import { DEFAULT_SIZES } from '../../../shared/sizes.js';
import { formationSpecKey, parseFormationRequest, parseOneOffRequest } from '../../../coordinator/formation-body.js';

const defaults = { sizes: DEFAULT_SIZES, defaultStack: 'busybox' };
const body = { quantity: 2, size: 'standard-2x', command: 'httpd -f -p $PORT', slug: { url: 'http://s3/slug.tgz?sig=x', sha256: 'b'.repeat(64) } };

t.test('a valid body resolves its size and gets the default stack and an empty env', async (t) => {
  const r = parseFormationRequest('shop', 'web', body, defaults);
  t.same(r.size, DEFAULT_SIZES['standard-2x']);
  t.equal(r.stack, 'busybox');
  t.same(r.env, {});
  t.equal(parseFormationRequest('shop', 'web', body, { ...defaults, defaultStack: 'heroku-24' }).stack, 'heroku-24');
});

t.test('an unknown size is refused with a code naming the known sizes', async (t) => {
  t.throws(() => parseFormationRequest('shop', 'web', { ...body, size: 'huge' }, defaults), { code: 'SIZE_UNKNOWN', message: /standard-1x/ });
});

t.test('schema violations name the field', async (t) => {
  t.throws(() => parseFormationRequest('shop', 'web', { ...body, quantity: -1 }, defaults), { code: 'PROTOCOL_SCHEMA_VIOLATION', message: /\/quantity/ });
  t.throws(() => parseFormationRequest('shop', 'web', { ...body, admin: true }, defaults), { code: 'PROTOCOL_SCHEMA_VIOLATION' });
  t.throws(() => parseFormationRequest('shop', 'web', { ...body, env: { 'A=B': 'x' } }, defaults), { code: 'PROTOCOL_SCHEMA_VIOLATION' });
  t.throws(() => parseFormationRequest('Shop!', 'web', body, defaults), { code: 'PROTOCOL_SCHEMA_VIOLATION', message: /app name/ });
  t.throws(() => parseFormationRequest('shop', 'we b', body, defaults), { code: 'PROTOCOL_SCHEMA_VIOLATION', message: /process type/ });
  t.throws(() => parseFormationRequest('shop', 'web', [], defaults), { code: 'PROTOCOL_SCHEMA_VIOLATION' });
});

t.test('the spec key changes with what the dyno runs, not with the slug URL or env order', async (t) => {
  const base = parseFormationRequest('shop', 'web', { ...body, env: { A: '1', B: '2' } }, defaults);
  const key = formationSpecKey(base);
  t.equal(formationSpecKey({ ...base, quantity: 9 }), key, 'quantity');
  t.equal(formationSpecKey({ ...base, slug: { ...base.slug, url: 'http://s3/slug.tgz?sig=y' } }), key, 'a fresh presigned URL');
  t.equal(formationSpecKey({ ...base, env: { B: '2', A: '1' } }), key, 'env order');
  t.not(formationSpecKey({ ...base, command: 'other' }), key, 'command');
  t.not(formationSpecKey({ ...base, env: { A: '1', B: '3' } }), key, 'env value');
  t.not(formationSpecKey({ ...base, size: DEFAULT_SIZES['standard-1x']! }), key, 'size');
  t.not(formationSpecKey({ ...base, slug: { ...base.slug, sha256: 'c'.repeat(64) } }), key, 'slug');
  t.not(formationSpecKey({ ...base, stack: 'heroku-24' }), key, 'stack');
});

t.test('a one-off body: detached, attached, attached with a terminal; tty without attach is refused', async (t) => {
  t.same(parseOneOffRequest('shop', { command: 'true' }, defaults), { command: 'true' }, 'detached');
  t.same(parseOneOffRequest('shop', { command: 'true', attach: false }, defaults), { command: 'true' }, 'attach: false is detached');
  t.same(parseOneOffRequest('shop', { command: 'cat', attach: true }, defaults), { command: 'cat', attach: { tty: false } });
  t.same(parseOneOffRequest('shop', { command: 'sh', attach: true, tty: true, cols: 120, rows: 40, size: 'standard-2x' }, defaults), {
    command: 'sh', attach: { tty: true, cols: 120, rows: 40 }, size: DEFAULT_SIZES['standard-2x'],
  });
  t.throws(() => parseOneOffRequest('shop', { command: 'sh', tty: true }, defaults), { code: 'PROTOCOL_SCHEMA_VIOLATION', message: /need attach: true/ });
  t.throws(() => parseOneOffRequest('shop', { command: 'sh', attach: true, cols: 0 }, defaults), { code: 'PROTOCOL_SCHEMA_VIOLATION' });
});
