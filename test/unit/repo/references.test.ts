// Every path the repository's own text names (comments, docs, scripts) exists: a comment that
// points at a file the repo does not have sends the next reader nowhere. Paths into dist/ name
// the source they are built from. Files under vendor/ and the lock file are not ours to check.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from '../../helpers/host.js';

const ROOTS = ['agent', 'coordinator', 'shared', 'test', 'scripts', 'docs', 'systemd', 'vendor'];
/** A repo-relative path: one of the roots, then path segments, ending in a file or a slash. */
const PATH_RE = new RegExp(`(?<![\\w./-])(?:dist/)?(?:${ROOTS.join('|')})/[\\w.-]+(?:/[\\w.-]+)*/?`, 'g');

function tracked(): string[] {
  const out = execFileSync('git', ['ls-files', '-co', '--exclude-standard'], { cwd: REPO, encoding: 'utf8' });
  return out.split('\n').filter((f) => f !== '' && !f.startsWith('vendor/') && f !== 'package-lock.json' && existsSync(join(REPO, f))
    && /\.(ts|mjs|sh|md|json|service|example)$|^\.ci\/|^\.taprc$/.test(f));
}

/** What a named path means on disk, or undefined when it is not a path to check. */
function resolveNamed(raw: string): string[] | undefined {
  let p = raw.replace(/[.]+$/, '');
  if (p.includes('*') || p.includes('<') || p.includes('/.../')) return undefined;
  if (p.startsWith('dist/')) {
    p = p.slice('dist/'.length);
    if (p.endsWith('.js')) return [p.slice(0, -3) + '.ts'];
  }
  // Imports name the built .js of a .ts source.
  if (p.endsWith('.js')) return [p, p.slice(0, -3) + '.ts'];
  return [p];
}

t.test('every repo path named in the repo exists', async (t) => {
  const missing: string[] = [];
  for (const file of tracked()) {
    const text = readFileSync(join(REPO, file), 'utf8');
    for (const m of text.matchAll(PATH_RE)) {
      const candidates = resolveNamed(m[0]);
      if (!candidates) continue;
      if (!candidates.some((c) => existsSync(join(REPO, c)))) missing.push(`${file}: ${m[0]}`);
    }
  }
  t.equal(missing.join('\n'), '', 'paths that do not exist');
});
