// The overlay mount line the runc and LXC shims run: run here by a real /bin/sh with a `mount`
// on PATH that records its argv, so quoting is checked the way the shim's shell reads it.
// (Mounting for real is covered by the runtime conformance suite.)
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { overlayMountArgs, overlayMountLine, overlayOptions } from '../../../../agent/runtime/overlay.js';

const dir = mkdtempSync(join(tmpdir(), 'slipway-overlay-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'mount'), `#!/bin/sh\nfor a in "$@"; do printf '%s\\n' "$a"; done > ${dir}/argv\n[ -z "$FAIL" ]\n`, { mode: 0o755 });
const run = (line: string, env: Record<string, string> = {}) => {
  try {
    execFileSync('/bin/sh', ['-c', `${line}\necho after`], { env: { PATH: `${dir}:/usr/bin:/bin`, ...env }, encoding: 'utf8' });
    return 0;
  } catch (err) {
    return (err as { status: number }).status;
  }
};

t.test('the shell line passes mount exactly the arguments the agent would', async (t) => {
  const p = { lower: ["/s/slug it's", '/s/stack $HOME'], upper: '/d/up"per', work: '/d/work`x`', target: '/d/root fs' };
  t.equal(run(overlayMountLine(p)), 0);
  t.same(readFileSync(join(dir, 'argv'), 'utf8').split('\n').slice(0, -1), overlayMountArgs(p));
  t.same(overlayMountArgs(p), ['-t', 'overlay', 'overlay', '-o', `lowerdir=/s/slug it's:/s/stack $HOME,upperdir=/d/up"per,workdir=/d/work\`x\``, '/d/root fs']);
});

t.test('a failed mount stops the shim with status 1 before anything else runs', async (t) => {
  t.equal(run(overlayMountLine({ lower: ['/a'], upper: '/u', work: '/w', target: '/t' }), { FAIL: '1' }), 1);
});

t.test('paths overlayfs cannot express are refused', async (t) => {
  for (const bad of ['/a:b', '/a,b', '/a\\b']) {
    t.throws(() => overlayOptions({ lower: [bad], upper: '/u', work: '/w', target: '/t' }), { code: 'CONFIG_INVALID' }, bad);
  }
});
