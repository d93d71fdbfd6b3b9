// Removes device nodes and FIFOs from a plain tar stream, block by block, before anything
// else sees the bytes. A stack is an OS image and images carry /dev nodes (debootstrap makes
// them), but runtimes mount their own /dev and the agent creates none: these entries are
// skipped, not fatal. GNU tar has no option that skips them (an --exclude list matches names
// with its own rules), so the stream GNU tar reads simply never contains them.
//
// The filter only needs entry boundaries: a 512-byte header, then the data blocks its size
// announces (a pax `size` record overrides the header field for the next entry). Extension
// headers (pax `x`, GNU long names `L`/`K`) describe the entry that follows them, so they are
// held until that entry's header arrives and dropped with it when it is a device; pax globals
// (`g`) are kept. To leave nothing for two tar readers to disagree on, every entry other than
// a regular file must announce size 0, and obsolete or vendor entry types are refused.
//
// Whatever the filter lets through is then judged (node-tar's Parser, import's entry policy)
// and written (GNU tar) from the very same bytes, so a mistake here can make an archive fail,
// never let an unjudged entry through. import.ts also checks that node-tar saw the same entry
// sizes as this filter, in order.
import { SlipwayError } from '../../shared/errors.js';

const BLOCK = 512;
/** Extension headers held for the next entry; node-tar ignores larger ones (its maxMetaEntrySize). */
const MAX_META_BYTES = 1024 * 1024;
/** Regular files, hard links, symlinks, char/block devices, directories, FIFOs, contiguous files. */
const ENTRY_TYPES = new Set(['0', '\0', '1', '2', '3', '4', '5', '6', '7']);
const DATA_TYPES = new Set(['0', '\0', '7']);
const SKIPPED_TYPES = new Set(['3', '4', '6']);
const META_TYPES = new Set(['x', 'g', 'L', 'K']);

/** An entry the filter passed on: its type flag and the data bytes that follow its header. */
export interface PassedEntry { typeflag: string; size: number }

function invalid(reason: string): SlipwayError {
  return new SlipwayError('STACK_INVALID', `stack archive is not a usable tar: ${reason}`);
}

/** The 12-byte size field: octal digits, or GNU's base-256 (high bit set) for large files. */
export function parseSizeField(field: Buffer): number {
  if (field[0]! & 0x80) {
    if (field[0] !== 0x80) throw invalid('negative or oversized base-256 size field');
    let n = 0;
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i]!;
    if (!Number.isSafeInteger(n)) throw invalid('size field too large');
    return n;
  }
  const text = field.toString('latin1').replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw invalid(`size field ${JSON.stringify(text)} is not octal`);
  return Number.parseInt(text, 8);
}

/** The `size` record of a pax extended header's data (`LEN key=value\n` records), if any. */
export function paxSize(data: Buffer): number | undefined {
  let size: number | undefined;
  let pos = 0;
  while (pos < data.length) {
    const space = data.indexOf(0x20, pos);
    if (space < 0) break;
    const len = Number(data.subarray(pos, space).toString('latin1'));
    if (!Number.isSafeInteger(len) || len <= 0 || pos + len > data.length) throw invalid('malformed pax extended header');
    const record = data.subarray(space + 1, pos + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0 && record.slice(0, eq) === 'size') {
      const v = record.slice(eq + 1);
      if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(Number(v))) throw invalid(`pax size ${JSON.stringify(v)}`);
      size = Number(v);
    }
    pos += len;
  }
  return size;
}

interface HeldMeta { typeflag: string; bytes: Buffer[] }

export class DeviceEntryFilter {
  /** Device and FIFO entries removed so far. */
  skipped = 0;
  /** Entries passed on and not yet claimed by the reader that checks them (see import.ts). */
  readonly passed: PassedEntry[] = [];

  private carry: Buffer = Buffer.alloc(0);
  /** Data bytes (padding included) still to come for the current entry. */
  private remaining = 0;
  /** Where those bytes go: out, into the held extension header, or nowhere. */
  private sink: 'out' | 'meta' = 'out';
  private held: HeldMeta[] = [];
  private heldBytes = 0;
  private zeroBlocks = 0;
  private done = false;

  /** Filters the next chunk; returns what may be passed on (possibly empty). Throws STACK_INVALID. */
  write(chunk: Buffer): Buffer {
    const out: Buffer[] = [];
    const buf = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
    this.carry = Buffer.alloc(0);
    let pos = 0;
    while (pos < buf.length && !this.done) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, buf.length - pos);
        const piece = buf.subarray(pos, pos + n);
        if (this.sink === 'out') out.push(piece);
        else this.holdData(piece);
        this.remaining -= n;
        pos += n;
        continue;
      }
      if (buf.length - pos < BLOCK) {
        this.carry = Buffer.from(buf.subarray(pos));
        break;
      }
      this.header(buf.subarray(pos, pos + BLOCK), out);
      pos += BLOCK;
    }
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }

  /** The bytes still held at the end of the input (a truncated archive): passed on, so the
   * tar readers report the truncation themselves. */
  end(): Buffer {
    const rest = [...this.held.flatMap((m) => m.bytes), this.carry];
    this.held = [];
    this.carry = Buffer.alloc(0);
    return Buffer.concat(rest);
  }

  private header(block: Buffer, out: Buffer[]): void {
    if (block.every((b) => b === 0)) {
      if (this.held.length) throw invalid('extension header without an entry before the end of the archive');
      out.push(block);
      // Two zero blocks end the archive; both tar readers stop there, so the rest is dropped.
      if (++this.zeroBlocks === 2) this.done = true;
      return;
    }
    this.zeroBlocks = 0;
    const typeflag = String.fromCharCode(block[156]!);
    const headerSize = parseSizeField(block.subarray(124, 136));
    const padded = (n: number) => Math.ceil(n / BLOCK) * BLOCK;

    if (META_TYPES.has(typeflag)) {
      if (this.heldBytes + BLOCK + padded(headerSize) > MAX_META_BYTES) throw invalid('extension headers larger than 1 MiB');
      this.held.push({ typeflag, bytes: [Buffer.from(block)] });
      this.heldBytes += BLOCK;
      this.remaining = padded(headerSize);
      this.sink = 'meta';
      return;
    }
    if (!ENTRY_TYPES.has(typeflag)) throw invalid(`unsupported entry type ${JSON.stringify(typeflag)}`);

    const size = this.overriddenSize() ?? headerSize;
    if (!DATA_TYPES.has(typeflag) && size !== 0) {
      throw invalid(`a type ${JSON.stringify(typeflag)} entry announces ${size} data bytes (only regular files have data)`);
    }
    const meta = this.held;
    this.held = [];
    this.heldBytes = 0;
    if (SKIPPED_TYPES.has(typeflag)) {
      this.skipped += 1;
      // Globals apply to every later entry and stay; the rest described this entry only.
      for (const m of meta) if (m.typeflag === 'g') out.push(...m.bytes);
      return;
    }
    for (const m of meta) out.push(...m.bytes);
    out.push(block);
    this.passed.push({ typeflag, size });
    this.remaining = padded(size);
    this.sink = 'out';
  }

  private holdData(piece: Buffer): void {
    const m = this.held[this.held.length - 1]!;
    m.bytes.push(Buffer.from(piece));
    this.heldBytes += piece.length;
  }

  /** The size a held pax header sets for the next entry (the last one wins, as in node-tar);
   * a global `size` is refused rather than interpreted. */
  private overriddenSize(): number | undefined {
    let size: number | undefined;
    for (const m of this.held) {
      if (m.typeflag !== 'x' && m.typeflag !== 'g') continue;
      const data = Buffer.concat(m.bytes.slice(1));
      const s = paxSize(data.subarray(0, dataLength(m)));
      if (s === undefined) continue;
      if (m.typeflag === 'g') throw invalid('a pax global header sets size');
      size = s;
    }
    return size;
  }
}

/** The unpadded data length of a held extension header (from its own header block). */
function dataLength(m: HeldMeta): number {
  return parseSizeField(m.bytes[0]!.subarray(124, 136));
}
