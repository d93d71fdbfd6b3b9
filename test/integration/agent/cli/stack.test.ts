// `slipway-agent stack import|ls` as an operator runs it: the built executable, exit codes,
// one JSON line on stdout, the error code first on stderr. Needs `npm run build` and
// agent/main.ts routing `stack` to agent/cli/stack.ts; until then it is skipped (the same
// behaviour is covered in-process by import.test.ts).
import t from 'tap';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { busyboxTree, scratchDir, stacksDirEntries, tarDir } from '../stacks/fixtures/rootfs.js';

const MAIN = resolve(import.meta.dirname, '../../../../dist/agent/main.js');
const wired = existsSync(MAIN) && readFileSync(MAIN, 'utf8').includes('cli/stack.js');
const skip = wired ? false : 'dist/agent/main.js does not route `stack` yet (wire agent/cli/stack.ts into agent/main.ts and build)';

function agent(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [MAIN, 'stack', ...args], { encoding: 'utf8', timeout: 120_000 }, (err, stdout, stderr) => {
      done({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
    });
  });
}

t.test('import prints one JSON line and ls lists the stack', { skip }, async (t) => {
  const work = scratchDir(t);
  const archive = tarDir(busyboxTree(t), join(work, 'busybox.tar.gz'));
  const state = join(work, 'state');
  const r = await agent('import', 'busybox', archive, '--state-dir', state);
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.equal(lines.length, 1);
  t.match(JSON.parse(lines[0]!), { name: 'busybox', path: join(state, 'stacks/busybox'), files: 3, bytes: Number });
  const ls = await agent('ls', '--state-dir', state);
  t.equal(ls.code, 0, ls.stderr);
  t.match(JSON.parse(ls.stdout), { name: 'busybox', shell: '/bin/sh', importedAt: String });
});

t.test('a bad archive: exit 1, stderr starts with the code, nothing left', { skip }, async (t) => {
  const work = scratchDir(t);
  writeFileSync(join(work, 'bad.tar.gz'), Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3]));
  const state = join(work, 'state');
  const r = await agent('import', 'broken', join(work, 'bad.tar.gz'), '--state-dir', state);
  t.equal(r.code, 1);
  t.match(r.stderr, /^STACK_INVALID: /);
  t.equal(r.stdout, '');
  t.same(stacksDirEntries(join(state, 'stacks')), []);
});
