// test/ is laid out like the source tree, so that each source file's tests are one hop away:
// the tests of agent/dynos/dyno.ts are test/unit/agent/dynos/dyno.test.ts (unit: pure logic,
// fakes) and test/integration/agent/dynos/dyno-runc.test.ts (real runtimes and processes).
// A test file is named after the source file or folder beside it that it tests, optionally
// followed by `-aspect` (driver-conformance, session-blackhole). Two folders have no source
// twin: test/integration/e2e (whole processes, several components) and test/unit/repo (the
// repository itself: this file). Helpers a suite shares live in a `fixtures/` folder next to
// it, or in test/helpers/.
import t from 'tap';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { REPO } from '../../helpers/host.js';

const KINDS = ['unit', 'integration'];
const NO_TWIN = new Set(['integration/e2e', 'unit/repo']);

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

/** Names in a source folder a test may be named after: its .ts files' stems and its folders. */
function subjects(srcDir: string): Set<string> {
  const out = new Set<string>();
  for (const name of readdirSync(srcDir)) {
    if (name.endsWith('.ts')) out.add(name.slice(0, -3));
    else if (statSync(join(srcDir, name)).isDirectory()) out.add(name);
  }
  return out;
}

t.test('every test file sits beside the twin of the source it tests', async (t) => {
  const wrong: string[] = [];
  let checked = 0;
  for (const kind of KINDS) {
    const root = join(REPO, 'test', kind);
    for (const file of walk(root)) {
      const rel = relative(root, file);
      const top = `${kind}/${rel.split('/')[0]}`;
      if (NO_TWIN.has(top)) continue;
      if (rel.split('/').includes('fixtures')) continue;
      if (!file.endsWith('.test.ts')) {
        wrong.push(`test/${kind}/${rel}: not a test and not in a fixtures/ folder`);
        continue;
      }
      const srcDir = join(REPO, dirname(rel));
      const stem = basename(file, '.test.ts');
      checked++;
      if (!existsSync(srcDir) || !statSync(srcDir).isDirectory()) {
        wrong.push(`test/${kind}/${rel}: no source folder ${dirname(rel)}/`);
        continue;
      }
      const names = subjects(srcDir);
      const ok = [...names].some((n) => stem === n || stem.startsWith(`${n}-`));
      if (!ok) wrong.push(`test/${kind}/${rel}: ${dirname(rel)}/ has no ${stem.split('-')[0]}.ts or folder of that name`);
    }
  }
  t.ok(checked > 50, `checked ${checked} test files`);
  t.equal(wrong.join('\n'), '', 'misplaced test files');
});
