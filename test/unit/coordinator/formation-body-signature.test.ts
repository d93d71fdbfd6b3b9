// A slug signature in a formation body (coordinator/formation-body.ts): kept as given, bounded
// by the protocol's schema, and part of the spec key only when there is one.
import t from 'tap';
import { createHash } from 'node:crypto';
import { DEFAULT_SIZES } from '../../../shared/sizes.js';
import { MAX_SLUG_SIGNATURE_CHARS } from '../../../shared/protocol.js';
import { formationSpecKey, parseFormationRequest } from '../../../coordinator/formation-body.js';

const defaults = { sizes: DEFAULT_SIZES, defaultStack: 'busybox' };
const SIGNATURE = 'untrusted comment: x\nRUQ...\ntrusted comment: release 7\n...\n';
const body = (signature?: string) => ({
  quantity: 1, size: 'standard-1x', command: 'web',
  slug: { url: 'http://s3/slug.tgz?sig=x', sha256: 'b'.repeat(64), ...(signature === undefined ? {} : { signature }) },
});

t.test('the signature is kept as given; without one the slug has no signature field', async (t) => {
  t.same(parseFormationRequest('shop', 'web', body(SIGNATURE), defaults).slug, { url: 'http://s3/slug.tgz?sig=x', sha256: 'b'.repeat(64), signature: SIGNATURE });
  t.same(parseFormationRequest('shop', 'web', body(), defaults).slug, { url: 'http://s3/slug.tgz?sig=x', sha256: 'b'.repeat(64) });
});

t.test('the schema bounds it: empty or over the protocol bound is refused', async (t) => {
  t.throws(() => parseFormationRequest('shop', 'web', body(''), defaults), { code: 'PROTOCOL_SCHEMA_VIOLATION', message: /\/slug\/signature/ });
  t.throws(() => parseFormationRequest('shop', 'web', body('x'.repeat(MAX_SLUG_SIGNATURE_CHARS + 1)), defaults), { code: 'PROTOCOL_SCHEMA_VIOLATION', message: /\/slug\/signature/ });
  t.ok(parseFormationRequest('shop', 'web', body('x'.repeat(MAX_SLUG_SIGNATURE_CHARS)), defaults), 'the bound itself is accepted');
});

t.test('the spec key: a new signature replaces dynos, an unsigned formation keeps its key of before', async (t) => {
  const unsigned = parseFormationRequest('shop', 'web', body(), defaults);
  const signed = parseFormationRequest('shop', 'web', body(SIGNATURE), defaults);
  t.not(formationSpecKey(signed), formationSpecKey(unsigned));
  t.not(formationSpecKey(parseFormationRequest('shop', 'web', body(`${SIGNATURE} `), defaults)), formationSpecKey(signed), 're-signed');
  t.equal(formationSpecKey(parseFormationRequest('shop', 'web', body(SIGNATURE), defaults)), formationSpecKey(signed));
  // The canonical form of before signatures: a coordinator upgrade replaces no unsigned dyno.
  const before = createHash('sha256').update(JSON.stringify([unsigned.size, unsigned.command, unsigned.slug.sha256, [], unsigned.stack, null])).digest('hex');
  t.equal(formationSpecKey(unsigned), before);
});
