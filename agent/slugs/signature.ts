// Signed slugs: minisign's public keys and detached signatures, and the agent's signing
// policy (config keys `requireSignedSlugs` and `slugPublicKeys`). An operator makes both with
// the Debian `minisign` tool (README "Signed slugs"); node:crypto verifies them, no dependency.
//
// Formats (minisign's own, https://jedisct1.github.io/minisign/):
//   public key   base64 of  "Ed" | key id (8 bytes) | Ed25519 public key (32)     = 56 chars
//   .minisig     untrusted comment: <text>            (not signed; ignored)
//                base64 of  "ED" | key id (8) | Ed25519 signature (64) over BLAKE2b-512(slug)
//                trusted comment: <text>              (signed by the next line)
//                base64 of  Ed25519 signature (64) over signature (64) | trusted comment text
// Only the prehashed algorithm "ED" is accepted, as `minisign -V -H` does: legacy "Ed" signs the
// raw bytes, and Ed25519 cannot be verified in a stream, so checking it would hold the whole
// compressed slug (up to 500 MB, Heroku's cap) in memory. minisign signs prehashed by default;
// `-l` makes the legacy kind, which is refused with a message that says so.
//
// Codes: no signature where one is required is SLUG_UNSIGNED; every other refusal is
// SLUG_SIGNATURE_INVALID with a message that says which check failed (unreadable, legacy, a key
// that is not trusted, bytes that are not the signed ones, a trusted comment that was altered).
// A key that is not trusted is not a third code: for the dyno the signature does not verify
// against this host's keys either way, and the message names the key id to add.
import { createHash, createPublicKey, verify, type Hash, type KeyObject } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { SlipwayError } from '../../shared/errors.js';

/** Longest `.minisig` text accepted: the protocol's bound on SlugRef.signature,
 * MAX_SLUG_SIGNATURE_CHARS in shared/protocol.ts, where the number comes from is written.
 * Not imported from there: loading the protocol compiles every message schema, which the
 * `slug` CLI does not otherwise pay for; test/unit/agent/slugs/signature.test.ts keeps the two
 * equal. */
export const MAX_SIGNATURE_CHARS = 10_240;

const UNTRUSTED_PREFIX = 'untrusted comment: ';
const TRUSTED_PREFIX = 'trusted comment: ';
const KEY_ALGORITHM = 'Ed';
const PREHASHED = 'ED';
const LEGACY = 'Ed';
const KEY_NUM_BYTES = 8;
/** DER SubjectPublicKeyInfo of an Ed25519 key (RFC 8410) up to the raw 32 key bytes. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const BASE64_RE = /^[A-Za-z0-9+/]+={0,2}$/;

export interface SlugPublicKey {
  /** The key id as minisign prints it (`minisign public key EF66D8C90CFA05C5`). */
  id: string;
  keyNum: Buffer;
  key: KeyObject;
}

export interface SlugSignature {
  /** Key id of the signer, as minisign prints it. */
  keyId: string;
  keyNum: Buffer;
  /** Ed25519 over the BLAKE2b-512 digest of the compressed slug. */
  signature: Buffer;
  /** The signed comment (minisign puts `timestamp:... file:... hashed` there). */
  trustedComment: string;
  /** Ed25519 over `signature | trustedComment`. */
  globalSignature: Buffer;
}

/** The hash a signature is over: feed it the compressed slug's bytes, as they were signed. */
export function slugDigest(): Hash {
  return createHash('blake2b512');
}

/** minisign prints the key id as a little-endian 64-bit number in hex. */
function keyIdOf(keyNum: Buffer): string {
  return Buffer.from(keyNum).reverse().toString('hex').toUpperCase();
}

/** Strict base64 (Buffer.from skips what it cannot read): undefined unless it round-trips. */
function strictBase64(text: string): Buffer | undefined {
  if (!BASE64_RE.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : undefined;
}

/** One public key: the base64 line of a `minisign.pub` file. Throws Error with the reason. */
export function parsePublicKey(line: string): SlugPublicKey {
  const bytes = strictBase64(line.trim());
  if (!bytes || bytes.length !== 2 + KEY_NUM_BYTES + 32) throw new Error('not a minisign public key (the second line of minisign.pub: 56 base64 characters)');
  if (bytes.subarray(0, 2).toString('latin1') !== KEY_ALGORITHM) throw new Error('not a minisign Ed25519 public key (its algorithm is not "Ed")');
  const keyNum = bytes.subarray(2, 2 + KEY_NUM_BYTES);
  const key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, bytes.subarray(2 + KEY_NUM_BYTES)]), format: 'der', type: 'spki' });
  return { id: keyIdOf(keyNum), keyNum, key };
}

function invalid(why: string): SlipwayError {
  return new SlipwayError('SLUG_SIGNATURE_INVALID', `slug signature refused: ${why}`);
}

/** The `.minisig` text of a slug; throws SLUG_SIGNATURE_INVALID when it is not one. */
export function parseSignature(text: string): SlugSignature {
  if (text.length > MAX_SIGNATURE_CHARS) throw invalid(`the signature is longer than ${MAX_SIGNATURE_CHARS} characters`);
  const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  if (lines.length !== 4) throw invalid(`a minisign signature has 4 lines, this text has ${lines.length}`);
  const [untrusted, sigLine, trusted, globalLine] = lines as [string, string, string, string];
  if (!untrusted.startsWith(UNTRUSTED_PREFIX)) throw invalid(`the first line does not start with "${UNTRUSTED_PREFIX}"`);
  const sig = strictBase64(sigLine);
  if (!sig || sig.length !== 2 + KEY_NUM_BYTES + 64) throw invalid('the second line is not a base64 minisign signature');
  const algorithm = sig.subarray(0, 2).toString('latin1');
  if (algorithm === LEGACY) throw invalid('it is a legacy minisign signature over the raw bytes (minisign -l); sign with minisign\'s default, prehashed mode');
  if (algorithm !== PREHASHED) throw invalid(`unknown signature algorithm ${JSON.stringify(algorithm)}`);
  if (!trusted.startsWith(TRUSTED_PREFIX)) throw invalid(`the third line does not start with "${TRUSTED_PREFIX}"`);
  const globalSignature = strictBase64(globalLine);
  if (!globalSignature || globalSignature.length !== 64) throw invalid('the fourth line is not a base64 Ed25519 signature');
  const keyNum = sig.subarray(2, 2 + KEY_NUM_BYTES);
  return { keyId: keyIdOf(keyNum), keyNum, signature: sig.subarray(2 + KEY_NUM_BYTES), trustedComment: trusted.slice(TRUSTED_PREFIX.length), globalSignature };
}

export interface SigningSettings {
  /** `requireSignedSlugs`: a slug without a signature is refused (SLUG_UNSIGNED). */
  required: boolean;
  /** `slugPublicKeys`: the base64 lines of the trusted `minisign.pub` files. */
  publicKeys: readonly string[];
}

/**
 * The agent's signing policy. What a slug reference's signature means on this host:
 * - `requireSignedSlugs` and no signature: SLUG_UNSIGNED.
 * - a signature and at least one key configured: it is verified, with or without
 *   `requireSignedSlugs`, and a bad one is refused. A host that trusts keys does not run a slug
 *   whose signature says someone else made it or the bytes changed.
 * - a signature and no key configured (then `requireSignedSlugs` is off): nothing to check it
 *   against, so it is ignored: a coordinator may send signatures to every host of a fleet that
 *   is being moved to signed slugs.
 * Several keys may be trusted at once (rotation: add the new key, re-sign, then drop the old one).
 */
export class SlugSigning {
  readonly required: boolean;
  private readonly keys: SlugPublicKey[];

  /** Throws CONFIG_INVALID for a key that is not a minisign public key, or for required
   * signatures without any key (no slug could run). */
  constructor(settings: SigningSettings) {
    this.required = settings.required;
    this.keys = settings.publicKeys.map((line, i) => {
      try {
        return parsePublicKey(line);
      } catch (err) {
        throw new SlipwayError('CONFIG_INVALID', `slugPublicKeys/${i}: ${(err as Error).message}`, { cause: err });
      }
    });
    if (this.required && this.keys.length === 0) {
      throw new SlipwayError('CONFIG_INVALID', 'requireSignedSlugs is true but slugPublicKeys is empty: no slug could run');
    }
  }

  /** Key ids trusted, as minisign prints them. */
  get keyIds(): string[] {
    return this.keys.map((k) => k.id);
  }

  /**
   * What one slug reference asks for, decided before any byte is fetched: undefined when its
   * slug is not checked; else its parsed signature, signed by a trusted key, which the store
   * verifies over the slug's bytes before extracting them. Throws SLUG_UNSIGNED or
   * SLUG_SIGNATURE_INVALID.
   */
  demand(signature: string | undefined): SlugSignature | undefined {
    if (signature === undefined) {
      if (this.required) throw new SlipwayError('SLUG_UNSIGNED', 'slug refused: this host requires signed slugs (requireSignedSlugs) and the slug reference carries no signature');
      return undefined;
    }
    if (this.keys.length === 0) return undefined;
    const sig = parseSignature(signature);
    if (!this.keys.some((k) => k.keyNum.equals(sig.keyNum))) {
      throw invalid(`it was made with key ${sig.keyId}, which is not trusted on this host (slugPublicKeys: ${this.keyIds.join(', ')})`);
    }
    return sig;
  }

  /** Throws SLUG_SIGNATURE_INVALID unless `sig` verifies over the slug whose BLAKE2b-512
   * digest is `digest`, and its trusted comment is the one signed. */
  verify(sig: SlugSignature, digest: Buffer): void {
    const keys = this.keys.filter((k) => k.keyNum.equals(sig.keyNum));
    if (keys.length === 0) throw invalid(`it was made with key ${sig.keyId}, which is not trusted on this host`);
    const signer = keys.find((k) => verify(null, digest, k.key, sig.signature));
    if (!signer) throw invalid(`it does not verify over the slug's bytes with key ${sig.keyId} (the slug is not the one that was signed, or the signature was altered)`);
    const signed = Buffer.concat([sig.signature, Buffer.from(sig.trustedComment, 'utf8')]);
    if (!verify(null, signed, signer.key, sig.globalSignature)) throw invalid(`its trusted comment was altered (the global signature does not verify with key ${sig.keyId})`);
  }
}

/** The `.minisig` text in `file` (the CLIs' `--signature FILE`): unreadable is CONFIG_INVALID
 * (the flag is wrong); too long to be a signature is SLUG_SIGNATURE_INVALID, like a bad one
 * from the coordinator. Reads at most what a signature can be. */
export async function readSignatureFile(file: string): Promise<string> {
  let bytes: Buffer;
  try {
    const handle = await fsp.open(file, 'r');
    try {
      // A UTF-8 character is at most 4 bytes: one more than that cannot be a signature.
      const buf = Buffer.alloc(MAX_SIGNATURE_CHARS * 4 + 1);
      const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
      bytes = buf.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  } catch (err) {
    throw new SlipwayError('CONFIG_INVALID', `--signature ${file}: ${(err as Error).message}`, { cause: err });
  }
  if (bytes.length > MAX_SIGNATURE_CHARS * 4) throw new SlipwayError('SLUG_SIGNATURE_INVALID', `slug signature refused: ${file} is larger than a minisign signature can be`);
  return bytes.toString('utf8');
}
