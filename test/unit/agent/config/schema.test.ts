// The schema is the one source of the agent's defaults: every key says what it means and what
// it is when unset, the defaults are valid values, and the numbers a policy module owns are that
// module's.
import t from 'tap';
import { KindGuard, OptionalKind, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { AgentConfigSchema, CONFIG_KEYS, DEFAULTS, NO_DEFAULT, keyMeta, withDefaults } from '../../../../agent/config/schema.js';
import { DEFAULT_RESTART_POLICY } from '../../../../agent/dynos/restart-policy.js';
import { DEFAULT_MEMORY_SETTINGS } from '../../../../agent/dynos/memory-policy.js';
import { UNKNOWN_DYNO_GRACE_MS } from '../../../../agent/link/convergence.js';

/** Every key and member of the schema, by its dotted path, with whether its parent requires it. */
function walk(schema: TSchema, path = ''): { path: string; schema: TSchema; requiredByParent: boolean }[] {
  if (!KindGuard.IsObject(schema)) return [];
  return Object.entries(schema.properties).flatMap(([k, s]) => {
    const p = path ? `${path}.${k}` : k;
    return [{ path: p, schema: s, requiredByParent: s[OptionalKind] !== 'Optional' }, ...walk(s, p)];
  });
}

t.test('every key has a meaning, and a default, a text for its computed default, or is mandatory', async (t) => {
  const all = walk(AgentConfigSchema);
  t.ok(all.length > 40, `${all.length} keys and members`);
  for (const { path, schema, requiredByParent } of all) {
    const m = keyMeta(schema);
    t.ok(typeof m.description === 'string' && m.description.length > 3, `${path} has a description`);
    const ways = [m.default !== undefined, m.defaultText !== undefined, m.mandatory === true, requiredByParent].filter(Boolean).length;
    t.equal(ways, 1, `${path}: exactly one of default, defaultText, mandatory, required member`);
  }
});

t.test('the defaults are valid values, and keys without one are the listed ones', async (t) => {
  t.ok(Value.Check(AgentConfigSchema, DEFAULTS), 'the defaults pass the schema');
  const without = CONFIG_KEYS.filter((k) => !(k in DEFAULTS));
  t.same(without.sort(), [...NO_DEFAULT].sort(), 'NO_DEFAULT (the Defaulted type) matches the schema');
  for (const key of NO_DEFAULT) t.ok(keyMeta(AgentConfigSchema.properties[key]).defaultText ?? keyMeta(AgentConfigSchema.properties[key]).mandatory, `${key} says what it is when unset`);
});

t.test('nested defaults come from the policy modules that own them', async (t) => {
  t.same(DEFAULTS.restarts, DEFAULT_RESTART_POLICY);
  t.same(DEFAULTS.memory, DEFAULT_MEMORY_SETTINGS);
  t.same(DEFAULTS.link, { unknownDynoGraceMs: UNKNOWN_DYNO_GRACE_MS });
  t.same(DEFAULTS.cycling, { enabled: true, periodMs: 24 * 3_600_000, jitterMs: 216 * 60_000 }, "Heroku's 24 h + 0-216 min");
  t.same(DEFAULTS.s3, {});
});

t.test('withDefaults fills members around what is set, and copies', async (t) => {
  const c = withDefaults({ restarts: { baseMs: 1 }, portRange: [1, 2] });
  t.same(c.restarts, { ...DEFAULT_RESTART_POLICY, baseMs: 1 });
  t.same(c.portRange, [1, 2]);
  c.dynoUser.uid = 1;
  t.equal(withDefaults({}).dynoUser.uid, DEFAULTS.dynoUser.uid, 'a default object is a copy');
  t.equal(c.coordinatorUrl, undefined, 'no default where there is none');
});

t.test('flags are on top-level scalar or pair keys only, and named once', async (t) => {
  const seen = new Set<string>();
  for (const { path, schema } of walk(AgentConfigSchema)) {
    const flag = keyMeta(schema).flag;
    if (flag === undefined) continue;
    t.notOk(path.includes('.'), `${path}: a nested member has no flag`);
    t.notOk(KindGuard.IsObject(schema), `${path}: an object has no flag`);
    t.match(flag, /^--[a-z][a-z-]*( \S+)?$/, `${path}: '--name PLACEHOLDER'`);
    const name = flag.split(' ')[0]!;
    t.notOk(seen.has(name), `${name} once`);
    seen.add(name);
  }
  t.notOk(seen.has('--config'), '--config is no key');
});
