// minisign keys and signatures as the agent reads them (agent/slugs/signature.ts), on files the
// real minisign 0.11 made (fixtures/minisign/: key pairs a and b, whose secret keys were not
// kept; signed.txt signed by a, prehashed and with `-l`, and by b). The integration tests
// (test/integration/agent/slugs/store-signatures.test.ts) sign fresh slugs with the binary.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_SLUG_SIGNATURE_CHARS } from '../../../../shared/protocol.js';
import { MAX_SIGNATURE_CHARS, parsePublicKey, parseSignature, readSignatureFile, slugDigest, SlugSigning } from '../../../../agent/slugs/signature.js';

const FX = join(import.meta.dirname, 'fixtures', 'minisign');
const read = (name: string): string => readFileSync(join(FX, name), 'utf8');
/** The base64 line of a minisign.pub file (what slugPublicKeys holds). */
const keyLine = (name: string): string => read(name).split('\n')[1]!;
/** The key id minisign prints on the first line of minisign.pub. */
const keyId = (name: string): string => /public key ([0-9A-F]{16})/.exec(read(name))![1]!;
const A = keyLine('a.pub');
const B = keyLine('b.pub');
const signed = readFileSync(join(FX, 'signed.txt'));
const digest = (bytes: Buffer): Buffer => slugDigest().update(bytes).digest();
const bySigner = read('a.minisig');

t.test('public keys: the base64 line of minisign.pub, with the key id minisign prints', async (t) => {
  t.equal(parsePublicKey(A).id, keyId('a.pub'));
  t.equal(parsePublicKey(`  ${B}\n`).id, keyId('b.pub'), 'surrounding white space is not part of the key');
  t.throws(() => parsePublicKey(A.slice(0, 40)), /not a minisign public key/);
  t.throws(() => parsePublicKey(`${A.slice(0, 55)}!`), /not a minisign public key/, 'not base64');
  const wrongAlgorithm = Buffer.from(A, 'base64');
  wrongAlgorithm.write('XX', 0, 'latin1');
  t.throws(() => parsePublicKey(wrongAlgorithm.toString('base64')), /algorithm is not "Ed"/);
});

t.test('the policy is checked when it is built: CONFIG_INVALID names the key', async (t) => {
  t.throws(() => new SlugSigning({ required: false, publicKeys: [A, 'A'.repeat(56)] }), { code: 'CONFIG_INVALID', message: /^slugPublicKeys\/1: / });
  t.throws(() => new SlugSigning({ required: true, publicKeys: [] }), { code: 'CONFIG_INVALID', message: /requireSignedSlugs is true but slugPublicKeys is empty/ });
  t.same(new SlugSigning({ required: true, publicKeys: [B, A] }).keyIds, [keyId('b.pub'), keyId('a.pub')]);
});

t.test('what a reference asks for, decided before any byte is fetched', async (t) => {
  const required = new SlugSigning({ required: true, publicKeys: [A] });
  t.throws(() => required.demand(undefined), { code: 'SLUG_UNSIGNED', retryable: false, message: /requires signed slugs/ });
  t.match(required.demand(bySigner), { keyId: keyId('a.pub'), trustedComment: 'release v42 of demo' });

  const optional = new SlugSigning({ required: false, publicKeys: [A] });
  t.equal(optional.demand(undefined), undefined, 'no signature, none required: not checked');
  t.ok(optional.demand(bySigner), 'a signature is checked whenever keys are trusted');
  t.throws(() => optional.demand(read('b.minisig')), { code: 'SLUG_SIGNATURE_INVALID', message: new RegExp(`made with key ${keyId('b.pub')}, which is not trusted on this host`) });

  const keyless = new SlugSigning({ required: false, publicKeys: [] });
  t.equal(keyless.demand(bySigner), undefined, 'without keys there is nothing to check a signature against');
  t.equal(keyless.demand('garbage'), undefined);
});

t.test('the bound on a signature is the protocol\'s', async (t) => {
  t.equal(MAX_SIGNATURE_CHARS, MAX_SLUG_SIGNATURE_CHARS);
});

t.test('a text that is not a prehashed minisign signature is SLUG_SIGNATURE_INVALID', async (t) => {
  const signing = new SlugSigning({ required: true, publicKeys: [A] });
  const lines = bySigner.trimEnd().split('\n');
  const cases: [string, string, RegExp][] = [
    ['legacy -l', read('a-legacy.minisig'), /legacy minisign signature over the raw bytes/],
    ['three lines', lines.slice(0, 3).join('\n'), /has 4 lines, this text has 3/],
    ['no untrusted comment prefix', [lines[0]!.replace('untrusted comment: ', ''), ...lines.slice(1)].join('\n'), /first line/],
    ['no trusted comment prefix', [lines[0], lines[1], lines[2]!.replace('trusted comment: ', ''), lines[3]].join('\n'), /third line/],
    ['signature not base64', [lines[0], `${lines[1]!.slice(0, -2)}#=`, lines[2], lines[3]].join('\n'), /second line/],
    ['global signature cut', [lines[0], lines[1], lines[2], lines[3]!.slice(4)].join('\n'), /fourth line/],
    ['too long', `${bySigner}${' '.repeat(MAX_SIGNATURE_CHARS)}`, /longer than 10240 characters/],
  ];
  for (const [what, text, message] of cases) t.throws(() => signing.demand(text), { code: 'SLUG_SIGNATURE_INVALID', retryable: false, message }, what);
  const unknown = Buffer.from(lines[1]!, 'base64');
  unknown.write('EX', 0, 'latin1');
  t.throws(() => parseSignature([lines[0], unknown.toString('base64'), lines[2], lines[3]].join('\n')), /unknown signature algorithm "EX"/);
  t.ok(signing.demand(bySigner.replaceAll('\n', '\r\n')), 'CRLF line ends (a file edited on Windows) read the same');
});

t.test('verification: the bytes that were signed, by a trusted key, with the trusted comment signed', async (t) => {
  const signing = new SlugSigning({ required: true, publicKeys: [A] });
  const sig = signing.demand(bySigner)!;
  signing.verify(sig, digest(signed));
  t.pass('the signed bytes verify');
  t.throws(() => signing.verify(sig, digest(Buffer.concat([signed, Buffer.from('x')]))), { code: 'SLUG_SIGNATURE_INVALID', message: /does not verify over the slug's bytes/ });

  const rotated = new SlugSigning({ required: true, publicKeys: [B, A] });
  rotated.verify(rotated.demand(bySigner)!, digest(signed));
  rotated.verify(rotated.demand(read('b.minisig'))!, digest(signed));
  t.pass('with two keys trusted (rotation) either signer verifies, the right key first or second');

  const lines = bySigner.trimEnd().split('\n');
  const altered = [lines[0], lines[1], 'trusted comment: release v43 of demo', lines[3]].join('\n');
  t.throws(() => signing.verify(signing.demand(altered)!, digest(signed)), { code: 'SLUG_SIGNATURE_INVALID', message: /trusted comment was altered/ });
  const untrustedChanged = [`untrusted comment: anything at all`, ...lines.slice(1)].join('\n');
  signing.verify(signing.demand(untrustedChanged)!, digest(signed));
  t.pass('the untrusted comment is not signed and not checked');

  // b's signature bytes under a's key id: the key id matches, the key does not.
  const forged = Buffer.from(read('b.minisig').split('\n')[1]!, 'base64');
  Buffer.from(lines[1]!, 'base64').copy(forged, 2, 2, 10);
  const forgedText = [lines[0], forged.toString('base64'), lines[2], lines[3]].join('\n');
  t.throws(() => signing.verify(signing.demand(forgedText)!, digest(signed)), { code: 'SLUG_SIGNATURE_INVALID', message: /does not verify over the slug's bytes/ });
});

t.test('--signature FILE: read whole, bounded, an unreadable file is the flag\'s fault', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-sigfile-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.equal(await readSignatureFile(join(FX, 'a.minisig')), bySigner);
  await t.rejects(readSignatureFile(join(dir, 'missing.minisig')), { code: 'CONFIG_INVALID', message: /^--signature .*missing\.minisig: .*ENOENT/ });
  const huge = join(dir, 'huge.minisig');
  writeFileSync(huge, Buffer.alloc(MAX_SIGNATURE_CHARS * 4 + 1, 0x41));
  await t.rejects(readSignatureFile(huge), { code: 'SLUG_SIGNATURE_INVALID', message: /larger than a minisign signature can be/ });
});
