// The on-disk format fixtures (test/fixtures/state/, one folder per version): every version and its files,
// so that a format test loads each version there is, not only the newest.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './host.js';

export const STATE_FIXTURES = join(REPO, 'test/fixtures/state');

/** `vN` folders in version order. */
export function stateVersions(): string[] {
  return readdirSync(STATE_FIXTURES).filter((d) => /^v\d+$/.test(d)).sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)));
}

/** Each version's copy of `name` (or names matching it), with its text. */
export function stateFixtures(match: (name: string) => boolean): { version: string; name: string; path: string; text: string }[] {
  return stateVersions().flatMap((version) => readdirSync(join(STATE_FIXTURES, version)).filter(match).map((name) => {
    const path = join(STATE_FIXTURES, version, name);
    return { version, name, path, text: readFileSync(path, 'utf8') };
  }));
}
