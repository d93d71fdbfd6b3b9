// The budgets a slug must stay within while it is extracted. A slug is hostile input: a
// zip bomb, a million empty files or a 4,000-level tree must be refused early, before it has
// filled the disk, and with one stable code (SLUG_TOO_LARGE). Pure: the extractor feeds it
// what it sees and stops at the first verdict (test/unit/agent/slugs/budget.test.ts).
import { SlipwayError } from '../../shared/errors.js';

export interface SlugLimits {
  /** Heroku caps compressed slugs at 500 MB. */
  maxCompressedBytes: number;
  /** Sum of the regular files' sizes. Heroku slugs of 500 MB compressed unpack to ~1.5 GB. */
  maxUnpackedBytes: number;
  /** Unpacked bytes per compressed byte. Source trees and node_modules compress 3-10x; a
   * zip bomb 1000x. Checked against max(compressed so far, RATIO_GRACE_BYTES), so a small
   * slug with one compressible file is not refused. */
  maxExpansionRatio: number;
  maxEntries: number;
  /** Path segments below the slug root. */
  maxDepth: number;
  /** Bytes of one entry's path (Linux PATH_MAX is 4096) and of one segment (NAME_MAX 255). */
  maxPathBytes: number;
}

export const RATIO_GRACE_BYTES = 16 * 1024 * 1024;
export const NAME_MAX_BYTES = 255;

export const DEFAULT_SLUG_LIMITS: SlugLimits = {
  maxCompressedBytes: 500 * 1024 * 1024,
  maxUnpackedBytes: 3 * 1024 * 1024 * 1024,
  maxExpansionRatio: 100,
  maxEntries: 500_000,
  maxDepth: 64,
  maxPathBytes: 4096,
};

export class SlugBudget {
  private compressed = 0;
  private unpacked = 0;
  private entries = 0;

  constructor(private readonly limits: SlugLimits = DEFAULT_SLUG_LIMITS) {}

  /** Bytes read from the source; the verdict if they break a budget. */
  onCompressed(bytes: number): SlipwayError | undefined {
    this.compressed += bytes;
    if (this.compressed > this.limits.maxCompressedBytes) {
      return tooLarge(`compressed slug exceeds ${this.limits.maxCompressedBytes} bytes`);
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
    const allowed = this.limits.maxExpansionRatio * Math.max(this.compressed, RATIO_GRACE_BYTES);
    if (this.unpacked > allowed) {
      return tooLarge(`slug expands more than ${this.limits.maxExpansionRatio}x (${this.unpacked} bytes from ${this.compressed} compressed)`);
    }
    return undefined;
  }

  get unpackedBytes(): number {
    return this.unpacked;
  }
}

function tooLarge(message: string): SlipwayError {
  return new SlipwayError('SLUG_TOO_LARGE', `slug breaks a budget: ${message}`);
}
