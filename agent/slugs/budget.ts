// The budgets a slug must stay within while it is extracted. A slug is hostile input: a
// zip bomb, a million empty files or a 4,000-level tree must be refused early, before it has
// filled the disk, and with one stable code (SLUG_TOO_LARGE). Pure: the extractor feeds it
// what it sees and stops at the first verdict (test/unit/agent/slugs/budget.test.ts).
//
// The expansion bound (README, "Slugs"): the tar stream never grows past
// maxExpansionRatio x max(compressed bytes, RATIO_GRACE_BYTES). It is judged twice:
// - on the bytes themselves (onPlain): every gunzip output chunk, before it reaches the
//   parser or GNU tar, against the compressed bytes read so far. Always on; a bomb of
//   unknown size writes at most 100 x 1 MiB = 100 MiB before it is refused.
// - on the headers (onEntry), when the slug's compressed size is known up front (a
//   Content-Length, a file's size): the file sizes the headers declare against 100x that
//   size, so a 1 MB slug holding a 1 GiB file is refused at that file's header, with nothing
//   of it written. The declared size only makes this check earlier: a source that declares
//   more than it sends is still held by the first check.
// Neither judges the file sizes of headers against the compressed bytes read *so far*: an
// early large file (a 120 MB node binary that comes first in the archive) would be refused
// although the slug as a whole compresses 3x.
import { SlipwayError } from '../../shared/errors.js';

export interface SlugLimits {
  /** Heroku caps compressed slugs at 500 MB. */
  maxCompressedBytes: number;
  /** Sum of the regular files' sizes. Heroku slugs of 500 MB compressed unpack to ~1.5 GB. */
  maxUnpackedBytes: number;
  /** Tar stream bytes per compressed byte (see above). Source trees and node_modules
   * compress 3-10x, tar padding included; 600,000 empty files ~83x; a zip bomb 1000x. */
  maxExpansionRatio: number;
  /** Entries of any type. Each one costs the host a file creation and, when the slug is
   * refused, a removal; the README's "What a hostile slug costs the host" has the figures. */
  maxEntries: number;
  /** Path segments below the slug root. */
  maxDepth: number;
  /** Bytes of one entry's path (Linux PATH_MAX is 4096) and of one segment (NAME_MAX 255). */
  maxPathBytes: number;
}

/** Compressed bytes every slug is credited with before the ratio applies: a small slug with
 * one compressible file (a 40 MB log of zeros in 40 KB) is not refused for it. 1 MiB x 100 =
 * the 100 MiB a bomb of unknown size may write before it is refused. */
export const RATIO_GRACE_BYTES = 1024 * 1024;
export const NAME_MAX_BYTES = 255;

export const DEFAULT_SLUG_LIMITS: SlugLimits = {
  maxCompressedBytes: 500 * 1024 * 1024,
  maxUnpackedBytes: 3 * 1024 * 1024 * 1024,
  maxExpansionRatio: 100,
  // Twice a large node_modules slug (100k+ files). Refusing a slug at the cap cost 20 s here
  // (12 s until refused, 8 s removing what was written), ~71 s until refused at the 2,800
  // files a second of a disk just after a large removal; 500,000 cost 88 s (README, "What a
  // hostile slug costs the host"; scripts/bench/slug-files.sh).
  maxEntries: 200_000,
  maxDepth: 64,
  maxPathBytes: 4096,
};

export class SlugBudget {
  private compressed = 0;
  private plain = 0;
  private unpacked = 0;
  private entries = 0;

  /** `declaredCompressedBytes`: the slug's compressed size when the source states it. */
  constructor(private readonly limits: SlugLimits = DEFAULT_SLUG_LIMITS, private readonly declaredCompressedBytes?: number) {}

  /** Bytes read from the source; the verdict if they break a budget. */
  onCompressed(bytes: number): SlipwayError | undefined {
    this.compressed += bytes;
    if (this.compressed > this.limits.maxCompressedBytes) {
      return tooLarge(`compressed slug exceeds ${this.limits.maxCompressedBytes} bytes`);
    }
    return undefined;
  }

  /** Bytes of tar stream out of gunzip, judged before they go any further. */
  onPlain(bytes: number): SlipwayError | undefined {
    this.plain += bytes;
    if (this.plain > this.allowed(this.compressed)) {
      return tooLarge(`slug expands more than ${this.limits.maxExpansionRatio}x (${this.plain} bytes of tar from ${this.compressed} compressed, past a grace of ${RATIO_GRACE_BYTES})`);
    }
    return undefined;
  }

  /** One tar entry, judged from its header before any of its data is written. */
  onEntry(relPath: string, size: number): SlipwayError | undefined {
    this.entries += 1;
    if (this.entries > this.limits.maxEntries) return tooLarge(`slug has more than ${this.limits.maxEntries} entries`);
    if (Buffer.byteLength(relPath) > this.limits.maxPathBytes) return tooLarge(`entry path longer than ${this.limits.maxPathBytes} bytes`);
    const segments = relPath.split('/');
    if (segments.some((s) => Buffer.byteLength(s) > NAME_MAX_BYTES)) return tooLarge(`entry name longer than ${NAME_MAX_BYTES} bytes`);
    // The root `app` itself is depth 0.
    if (segments.length - 1 > this.limits.maxDepth) return tooLarge(`entry deeper than ${this.limits.maxDepth} directories`);
    this.unpacked += size;
    if (this.unpacked > this.limits.maxUnpackedBytes) return tooLarge(`slug unpacks to more than ${this.limits.maxUnpackedBytes} bytes`);
    if (this.declaredCompressedBytes !== undefined) {
      const compressed = Math.max(this.declaredCompressedBytes, this.compressed);
      if (this.unpacked > this.allowed(compressed)) {
        return tooLarge(`slug expands more than ${this.limits.maxExpansionRatio}x (its headers declare ${this.unpacked} bytes, its size is ${compressed} compressed)`);
      }
    }
    return undefined;
  }

  get unpackedBytes(): number {
    return this.unpacked;
  }

  private allowed(compressed: number): number {
    return this.limits.maxExpansionRatio * Math.max(compressed, RATIO_GRACE_BYTES);
  }
}

function tooLarge(message: string): SlipwayError {
  return new SlipwayError('SLUG_TOO_LARGE', `slug breaks a budget: ${message}`);
}
