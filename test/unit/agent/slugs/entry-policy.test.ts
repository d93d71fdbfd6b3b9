import t from 'tap';
import { checkEntry, normalizeEntryPath, safeMode, symlinkStaysInside } from '../../../../agent/slugs/entry-policy.js';

t.test('paths under app/ are accepted in both spellings and normalized', async (t) => {
  t.same(normalizeEntryPath('./app/bin/web'), { ok: true, relPath: 'app/bin/web' });
  t.same(normalizeEntryPath('app/bin/web'), { ok: true, relPath: 'app/bin/web' });
  t.same(normalizeEntryPath('./app/'), { ok: true, relPath: 'app' });
  t.same(normalizeEntryPath('app//x/./y'), { ok: true, relPath: 'app/x/y' });
  t.same(normalizeEntryPath('./'), { ok: true, relPath: '' });
  t.same(normalizeEntryPath('.'), { ok: true, relPath: '' });
});

t.test('unsafe paths are refused with a reason', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['../escape', /'\.\.'/],
    ['./app/../../escape', /'\.\.'/],
    ['app/..', /'\.\.'/],
    ['/etc/passwd', /absolute/],
    ['/app/x', /absolute/],
    ['app\\..\\x', /backslash/],
    ['app/x\0y', /NUL/],
    ['etc/passwd', /not under app/],
    ['./application/x', /not under app/],
    ['App/x', /not under app/],
  ];
  for (const [p, reason] of cases) t.match(normalizeEntryPath(p), { ok: false, reason }, JSON.stringify(p));
});

t.test('only files, directories and symlinks are extracted', async (t) => {
  t.match(checkEntry({ path: './app/a', type: 'File', mode: 0o644 }), { action: 'extract', kind: 'file', relPath: 'app/a' });
  t.match(checkEntry({ path: './app/a', type: 'OldFile' }), { action: 'extract', kind: 'file' });
  t.match(checkEntry({ path: './app/a', type: 'ContiguousFile' }), { action: 'extract', kind: 'file' });
  t.match(checkEntry({ path: './app/d/', type: 'Directory' }), { action: 'extract', kind: 'directory' });
  t.match(checkEntry({ path: './app/l', type: 'SymbolicLink', linkpath: 'a' }), { action: 'extract', kind: 'symlink' });
  t.match(checkEntry({ path: './app/h', type: 'Link', linkpath: './app/a' }), { action: 'reject', code: 'SLUG_UNSAFE_ENTRY', reason: /hard link/ });
  for (const type of ['CharacterDevice', 'BlockDevice', 'FIFO', 'GNUDumpDir', 'SparseFile', 'Unsupported']) {
    t.match(checkEntry({ path: './app/x', type }), { action: 'reject', code: 'SLUG_UNSAFE_ENTRY', reason: new RegExp(type) }, type);
  }
});

t.test('a path problem is reported before a type problem', async (t) => {
  t.match(checkEntry({ path: '../dev/null', type: 'CharacterDevice' }), { action: 'reject', code: 'SLUG_UNSAFE_PATH' });
});

t.test('the archive root entry is skipped, never applied; app itself must be a directory', async (t) => {
  t.same(checkEntry({ path: './', type: 'Directory', mode: 0o777 }), { action: 'skip' });
  t.match(checkEntry({ path: '.', type: 'File' }), { action: 'reject', code: 'SLUG_UNSAFE_PATH' });
  t.match(checkEntry({ path: './app', type: 'File' }), { action: 'reject', code: 'SLUG_UNSAFE_ENTRY' });
  t.match(checkEntry({ path: 'app', type: 'SymbolicLink', linkpath: 'app/x' }), { action: 'reject', code: 'SLUG_UNSAFE_ENTRY' });
  t.match(checkEntry({ path: 'app/', type: 'Directory' }), { action: 'extract', relPath: 'app' });
});

t.test('symlinks must resolve inside app/', async (t) => {
  t.equal(symlinkStaysInside('app/lib', 'bin'), true);
  t.equal(symlinkStaysInside('app/bin/python', '../vendor/python3'), true);
  t.equal(symlinkStaysInside('app/a/b/c', '../../x'), true);
  t.equal(symlinkStaysInside('app/self', '.'), true);
  t.equal(symlinkStaysInside('app/x', '..'), false, 'the slug dir above app/');
  t.equal(symlinkStaysInside('app/x', '../app/y'), true, 'out and back in is fine');
  t.equal(symlinkStaysInside('app/x', '../../etc/passwd'), false);
  t.equal(symlinkStaysInside('app/x', '/etc'), false);
  t.equal(symlinkStaysInside('app/x', '/app/y'), false, 'absolute targets are refused even if they mean /app');
  t.equal(symlinkStaysInside('app/x', ''), false);
  t.equal(symlinkStaysInside('app/x', 'a\\..\\..'), false);
  t.match(checkEntry({ path: './app/etc', type: 'SymbolicLink', linkpath: '/etc' }), { action: 'reject', code: 'SLUG_UNSAFE_ENTRY', reason: /outside/ });
});

t.test('modes lose setuid, setgid, sticky and group/other write', async (t) => {
  t.equal(safeMode(0o4755, 'file'), 0o755);
  t.equal(safeMode(0o2755, 'file'), 0o755);
  t.equal(safeMode(0o1777, 'directory'), 0o755);
  t.equal(safeMode(0o666, 'file'), 0o644);
  t.equal(safeMode(0o600, 'file'), 0o600);
  t.equal(safeMode(0o000, 'directory'), 0o700, 'directories stay traversable by their owner');
  t.equal(safeMode(undefined, 'file'), undefined, 'no mode: the extractor default applies');
  t.match(checkEntry({ path: 'app/bin/web', type: 'File', mode: 0o6755 }), { action: 'extract', mode: 0o755 });
});

t.test('an entry at or below an earlier symlink is found', async (t) => {
  const { throughSymlink } = await import('../../../../agent/slugs/extract.js');
  const links = new Set(['app/d', 'app/x/y']);
  t.equal(throughSymlink('app/d/file', links), 'app/d');
  t.equal(throughSymlink('app/d', links), 'app/d');
  t.equal(throughSymlink('app/x/y/z/w', links), 'app/x/y');
  t.equal(throughSymlink('app/dd/file', links), undefined, 'a sibling with a longer name is not below the link');
  t.equal(throughSymlink('app/e', new Set()), undefined);
});
