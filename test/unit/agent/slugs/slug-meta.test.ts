// Slug metadata on disk (agent/slugs/slug-meta.ts): every version's fixture loads, and what
// the writer makes of it reads back the same, in the current version.
import t from 'tap';
import { parseSlugMeta, serializeSlugMeta, SLUG_META_VERSION } from '../../../../agent/slugs/slug-meta.js';
import { stateFixtures } from '../../../helpers/state-fixtures.js';

const fixtures = stateFixtures((n) => n === 'slug-meta.json');

t.test('every version of the slug metadata loads, and its saved copy round-trips', async (t) => {
  t.ok(fixtures.some((f) => f.version === 'v1'), 'the v1 fixture is there');
  for (const f of fixtures) {
    const r = parseSlugMeta(f.text);
    if (!('meta' in r)) {
      t.fail(`${f.version}/${f.name}: ${r.problem}`);
      continue;
    }
    const fields = JSON.parse(f.text) as Record<string, unknown>;
    delete fields.version;
    t.same(r.meta, fields, `${f.version}: every field is read`);
    const saved = serializeSlugMeta(r.meta);
    t.same(JSON.parse(saved), { version: SLUG_META_VERSION, ...fields }, `${f.version}: saved in version ${SLUG_META_VERSION}`);
    t.same(parseSlugMeta(saved), r, `${f.version}: the saved copy reads back the same`);
  }
  const v1 = fixtures.find((f) => f.version === 'v1')!;
  t.equal(serializeSlugMeta((parseSlugMeta(v1.text) as { meta: never }).meta), v1.text, 'the v1 fixture is exactly what the writer writes today');
});

t.test('a newer, broken or foreign metadata file is refused with why, never guessed at', async (t) => {
  const v1 = JSON.parse(fixtures.find((f) => f.version === 'v1')!.text) as Record<string, unknown>;
  const cases: [string, string, RegExp][] = [
    ['newer', JSON.stringify({ ...v1, version: SLUG_META_VERSION + 1 }), /newer agent/],
    ['torn', '{"version":1,"sha2', /unreadable/],
    ['not an object', 'null', /not an object/],
    ['a field missing', JSON.stringify({ ...v1, bytes: undefined }), /not slug metadata: \/bytes/],
    ['a wrong type', JSON.stringify({ ...v1, durable: 'yes' }), /not slug metadata: \/durable/],
    ['a bad digest', JSON.stringify({ ...v1, sha256: 'x' }), /not slug metadata: \/sha256/],
  ];
  for (const [what, text, problem] of cases) {
    const r = parseSlugMeta(text);
    t.match('problem' in r ? r.problem : 'loaded', problem, what);
  }
});
