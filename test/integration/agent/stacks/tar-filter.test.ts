// DeviceEntryFilter on archives GNU tar made from real device nodes and FIFOs (gnu and posix
// formats, long names), fed in chunks of every awkward size, and on hand-built headers for the
// cases GNU tar does not produce. (It lives under integration/ because it runs GNU tar and
// mknod; it touches nothing outside its temp dir.)
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Header, Parser, Pax, type ReadEntry } from 'tar';
import { DeviceEntryFilter, parseSizeField, paxSize } from '../../../../agent/stacks/tar-filter.js';
import { rawEntry } from '../slugs/fixtures/tarball.js';
import { scratchDir } from './fixtures/rootfs.js';

interface Seen { path: string; type: string; body: string }

/** What node-tar reads from `bytes`: every entry, with file bodies. */
function parse(bytes: Buffer): Seen[] {
  const seen: Seen[] = [];
  const p = new Parser({
    strict: true,
    onReadEntry: (e: ReadEntry) => {
      const s: Seen = { path: e.path, type: e.type, body: '' };
      seen.push(s);
      e.on('data', (b: Buffer) => { s.body += b.toString('utf8'); });
    },
  });
  p.on('error', (err: Error) => { throw err; });
  p.end(bytes);
  return seen;
}

function filterInChunks(bytes: Buffer, size: number): { out: Buffer; filter: DeviceEntryFilter } {
  const filter = new DeviceEntryFilter();
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(filter.write(bytes.subarray(i, i + size)));
  out.push(filter.end());
  return { out: Buffer.concat(out), filter };
}

const long = 'n'.repeat(130);
const DEVICE_TYPES = new Set(['CharacterDevice', 'BlockDevice', 'FIFO']);

for (const format of ['gnu', 'posix'] as const) {
  t.test(`${format} format: devices and FIFOs are removed, everything else passes unchanged`, async (t) => {
    const dir = scratchDir(t);
    const root = join(dir, 'root');
    mkdirSync(join(root, 'dev', long), { recursive: true });
    execFileSync('mknod', [join(root, 'dev/null'), 'c', '1', '3']);
    execFileSync('mknod', [join(root, 'dev', long, 'blk'), 'b', '7', '0']);
    execFileSync('mkfifo', [join(root, 'dev', `${long}-fifo`)]);
    writeFileSync(join(root, 'dev', long, 'file'), 'x'.repeat(1000));
    // Short-named, right after the long-named FIFO: a long name left behind would rename it.
    writeFileSync(join(root, 'dev', 'o-after'), 'tail\n');
    writeFileSync(join(root, 'empty'), '');
    const archive = join(dir, 'a.tar');
    execFileSync('tar', ['-C', root, `--format=${format}`, '--sort=name', '-cf', archive, '.']);
    const bytes = readFileSync(archive);
    const original = parse(bytes);
    t.equal(original.filter((e) => DEVICE_TYPES.has(e.type)).length, 3, 'the archive holds three device/FIFO entries');

    const expected = original.filter((e) => !DEVICE_TYPES.has(e.type));
    let first: Buffer | undefined;
    for (const size of [1, 7, 511, 512, 513, 4096, 65536, bytes.length]) {
      const { out, filter } = filterInChunks(bytes, size);
      first ??= out;
      t.ok(out.equals(first), `chunks of ${size} bytes give the same output`);
      t.equal(filter.skipped, 3);
      t.same(parse(out), expected, `chunks of ${size}: node-tar reads the same entries, devices gone`);
      t.same(filter.passed.map((p) => p.size), expected.map((e) => Buffer.byteLength(e.body)), 'the sizes it announces are node-tar\'s');
    }
    t.equal(first!.length % 512, 0);
  });
}

function header(fields: Record<string, unknown>): Buffer {
  const block = Buffer.alloc(512);
  new Header({ mode: 0o644, uid: 0, gid: 0, mtime: new Date(0), size: 0, ...fields }).encode(block, 0);
  return block;
}

/** A header whose type flag byte is set by hand (node-tar will not encode unknown ones). */
function withTypeflag(block: Buffer, flag: string): Buffer {
  const b = Buffer.from(block);
  b[156] = flag.charCodeAt(0);
  // Checksum: the sum of all bytes with the checksum field as spaces, in octal.
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return b;
}

const END = Buffer.alloc(1024);

t.test('a pax size record overrides the header size for the next entry only', async (t) => {
  const pax = new Pax({ size: 5, path: 'big' }).encode();
  const body = Buffer.alloc(512);
  body.write('hello');
  const bytes = Buffer.concat([pax, header({ path: 'big', type: 'File', size: 0 }), body, rawEntry({ path: 'next', body: 'ok', uid: 0, gid: 0 }), END]);
  const { out, filter } = filterInChunks(bytes, 100);
  t.same(filter.passed, [{ typeflag: '0', size: 5 }, { typeflag: '0', size: 2 }]);
  t.same(parse(out).map((e) => [e.path, e.body]), [['big', 'hello'], ['next', 'ok']]);
});

t.test('a device described by a pax header loses the header; a pax global stays', async (t) => {
  const globalHeader = new Pax({ comment: 'kept' }, true).encode();
  const local = new Pax({ path: 'dev/described' }).encode();
  const bytes = Buffer.concat([globalHeader, local, header({ path: 'dev/x', type: 'CharacterDevice' }), rawEntry({ path: 'after', body: 'a', uid: 0, gid: 0 }), END]);
  const { out, filter } = filterInChunks(bytes, 512);
  t.equal(filter.skipped, 1);
  t.ok(out.subarray(0, globalHeader.length).equals(globalHeader), 'the global header is passed on');
  t.notOk(out.includes(Buffer.from('dev/described')), 'the local header went with its device');
  t.same(parse(out).map((e) => e.path), ['after']);
});

t.test('headers two tar readers could disagree on are refused', async (t) => {
  const cases: [string, Buffer, RegExp][] = [
    ['a symlink that announces data', Buffer.concat([header({ path: 'l', type: 'SymbolicLink', linkpath: 't', size: 10 }), Buffer.alloc(512)]), /type "2" entry announces 10 data bytes/],
    ['a FIFO that announces data', Buffer.concat([header({ path: 'f', type: 'FIFO', size: 1 }), Buffer.alloc(512)]), /type "6" entry announces 1 data bytes/],
    ['a GNU sparse file', withTypeflag(header({ path: 's', type: 'File' }), 'S'), /unsupported entry type "S"/],
    ['an old GNU long name', withTypeflag(header({ path: 'n', type: 'File' }), 'N'), /unsupported entry type "N"/],
    ['a pax global size', new Pax({ size: 3 }, true).encode(), /pax global header sets size/],
    ['a non-octal size', (() => { const b = header({ path: 'x', type: 'File' }); b.write('12x4', 124, 'latin1'); return b; })(), /is not octal/],
  ];
  for (const [what, bytes, message] of cases) {
    t.throws(() => {
      const f = new DeviceEntryFilter();
      f.write(Buffer.concat([bytes, rawEntry({ path: 'z', uid: 0, gid: 0 }), END]));
    }, { code: 'STACK_INVALID', message }, what);
  }
});

t.test('a truncated archive: the held bytes are passed on for the readers to refuse', async (t) => {
  const pax = new Pax({ path: 'p' }).encode();
  const f = new DeviceEntryFilter();
  t.equal(f.write(pax.subarray(0, 700)).length, 0, 'an extension header is held until its entry');
  t.equal(f.end().length, 700);
});

t.test('size fields: octal with NUL or space padding, base-256 for large files', async (t) => {
  t.equal(parseSizeField(Buffer.from('00000001750\0', 'latin1')), 1000);
  t.equal(parseSizeField(Buffer.from('       1750 ', 'latin1')), 1000);
  t.equal(parseSizeField(Buffer.alloc(12)), 0);
  const big = Buffer.alloc(12);
  big[0] = 0x80;
  big.writeUIntBE(10 * 2 ** 30, 6, 6);
  t.equal(parseSizeField(big), 10 * 2 ** 30);
  t.equal(paxSize(Buffer.from('13 size=1234\n11 path=ab\n')), 1234);
  t.equal(paxSize(Buffer.from('11 path=ab\n')), undefined);
  t.throws(() => paxSize(Buffer.from('99 size=1\n')), { code: 'STACK_INVALID' });
});
