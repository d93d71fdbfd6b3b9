// The S3 source through the store, against a REAL S3-compatible server (s3rver, in-process on
// loopback) uploaded to with the real S3 client: extraction, not-found, forbidden, a stopped
// server, the SDK's default credential chain falling through to (a fake) EC2 IMDS. Answers
// s3rver cannot give (503 with Retry-After, stalls, cuts) come from small loopback servers.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseS3Url, S3SlugSource, type S3SlugSourceOptions } from '../../../../agent/slugs/s3-source.js';
import { GOOD_ENTRIES, GOOD_FILES, sha256, tgz } from './fixtures/tarball.js';
import { startServer } from './fixtures/server.js';
import { capturingLogger, storeFixture } from './fixtures/store.js';
import { BUCKET, REGION, S3RVER_CREDENTIALS, startFakeS3Errors, startS3rver } from './fixtures/s3.js';
import { startFakeImds } from './fixtures/imds.js';

type Teardown = { teardown(fn: () => unknown): void };

const good = tgz(GOOD_ENTRIES);
const goodSha = sha256(good);
const big = tgz([{ path: 'app/', type: 'Directory' }, { path: 'app/blob', body: randomBytes(400_000) }]);
const bigSha = sha256(big);
const otherSha = sha256(Buffer.from('not stored anywhere'));

function s3Source(t: Teardown, log: S3SlugSourceOptions['log'], endpoint: string, extra: Partial<S3SlugSourceOptions> = {}): S3SlugSource {
  const source = new S3SlugSource({ log, region: REGION, endpoint, forcePathStyle: true, credentials: S3RVER_CREDENTIALS, ...extra });
  t.teardown(() => source.destroy());
  return source;
}

/** s3rver with the good slug uploaded, and a store whose only source is S3. */
async function setup(t: Teardown, extra: Partial<S3SlugSourceOptions> = {}) {
  const s3 = await startS3rver(t);
  await s3.put('apps/my app/good.tgz', good);
  const fx = await storeFixture(t);
  const source = s3Source(t, fx.log, s3.endpoint, extra);
  const store = fx.makeStore({ sources: [source] });
  await store.init();
  return { s3, fx, source, store };
}

t.test('a slug uploaded to s3rver is fetched through the store and extracted', async (t) => {
  const { s3, fx, store } = await setup(t);
  await s3.put('apps/big.tgz', big);
  const connectionsBefore = s3.connections(); // the uploader's
  const entry = await store.ensure({ url: `s3://${BUCKET}/apps/my%20app/good.tgz`, sha256: goodSha });
  t.equal(entry.cached, false);
  t.equal(entry.files, GOOD_FILES);
  t.equal(readFileSync(path.join(entry.path, 'app/Procfile'), 'utf8'), 'web: ./bin/web\n');
  t.equal(readFileSync(path.join(entry.path, 'app/README'), 'utf8'), 'no ./ prefix here\n');
  const bigEntry = await store.ensure({ url: `s3://${BUCKET}/apps/big.tgz`, sha256: bigSha });
  t.equal(bigEntry.bytes, 400_000, 'the SHA-256 matched: the bytes came back exactly as stored');
  t.equal(s3.connections() - connectionsBefore, 1, 'one client, one keep-alive connection, reused by both downloads');
  t.equal((await store.ensure({ url: `s3://${BUCKET}/apps/big.tgz`, sha256: bigSha })).cached, true);
  const logs = fx.logText();
  t.match(logs, /s3:\/\/slugs\/apps\/my%20app\/good\.tgz/, 'the store logs the URL');
  t.match(logs, /"key":"apps\/my app\/good\.tgz"/, 'the source logs bucket and key');
  t.notMatch(logs, /S3RVER/, 'no credentials in the logs');
});

t.test('a missing key gives SLUG_NOT_FOUND and leaves the store as it was', async (t) => {
  const { fx, store } = await setup(t);
  await store.ensure({ url: `s3://${BUCKET}/apps/my%20app/good.tgz`, sha256: goodSha });
  await t.rejects(store.ensure({ url: `s3://${BUCKET}/apps/nope.tgz`, sha256: otherSha }), {
    code: 'SLUG_NOT_FOUND', retryable: false, message: /s3:\/\/slugs\/apps\/nope\.tgz \(NoSuchKey, HTTP 404\)/,
  });
  t.same(await fx.storeNames(), [goodSha, `${goodSha}.json`]);
});

t.test('a missing bucket gives SLUG_NOT_FOUND', async (t) => {
  const { fx, store } = await setup(t);
  await t.rejects(store.ensure({ url: 's3://no-such-bucket/apps/good.tgz', sha256: goodSha }), {
    code: 'SLUG_NOT_FOUND', retryable: false, message: /NoSuchBucket/,
  });
  t.same(await fx.storeNames(), []);
});

t.test('an unknown access key gives SLUG_FORBIDDEN; s3rver does not verify SigV4 signatures', async (t) => {
  const { s3, fx } = await setup(t);
  const wrongKey = s3Source(t, fx.log, s3.endpoint, { credentials: { accessKeyId: 'AKIAWRONGWRONG', secretAccessKey: 'wrong-secret' } });
  await t.rejects(fx.makeStore({ sources: [wrongKey] }).ensure({ url: `s3://${BUCKET}/apps/my%20app/good.tgz`, sha256: goodSha }), {
    code: 'SLUG_FORBIDDEN', retryable: false, message: /InvalidAccessKeyId, HTTP 403/,
  });
  t.notMatch(fx.logText(), /wrong-secret/, 'no secret in the logs');
  // The known key id with a wrong secret is accepted: s3rver checks only that the key id
  // exists (SigV4 verification is unimplemented there), so SignatureDoesNotMatch is covered
  // by the fake-answer test below instead.
  const wrongSecret = s3Source(t, fx.log, s3.endpoint, { credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'not-the-secret' } });
  const entry = await fx.makeStore({ sources: [wrongSecret] }).ensure({ url: `s3://${BUCKET}/apps/my%20app/good.tgz`, sha256: goodSha });
  t.equal(entry.files, GOOD_FILES, 's3rver accepted a wrong secret');
  t.same(await fx.storeNames(), [goodSha, `${goodSha}.json`]);
});

t.test('a stopped s3rver gives a retryable SLUG_FETCH_FAILED', async (t) => {
  const { s3, fx, store } = await setup(t);
  await s3.stop();
  await t.rejects(store.ensure({ url: `s3://${BUCKET}/apps/my%20app/good.tgz`, sha256: goodSha }), {
    code: 'SLUG_FETCH_FAILED', retryable: true, message: /ECONNREFUSED/,
  });
  t.same(await fx.storeNames(), []);
});

t.test('default credential chain: no credentials given, they come from EC2 instance metadata (IMDSv2)', async (t) => {
  // IMDS is the one mock here: the real service only exists inside EC2. Everything before it
  // in the SDK's chain is made empty (no AWS_* env, empty shared config and credentials
  // files), so the chain really falls through to it.
  const saved = { ...process.env };
  const scratch = mkdtempSync(path.join(tmpdir(), 'slipway-aws-'));
  t.teardown(() => {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
    rmSync(scratch, { recursive: true, force: true });
  });
  for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k];
  writeFileSync(path.join(scratch, 'credentials'), '');
  writeFileSync(path.join(scratch, 'config'), '');
  process.env.AWS_SHARED_CREDENTIALS_FILE = path.join(scratch, 'credentials');
  process.env.AWS_CONFIG_FILE = path.join(scratch, 'config');
  const imds = await startFakeImds(t, S3RVER_CREDENTIALS);
  process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = imds.endpoint;

  const s3 = await startS3rver(t);
  await s3.put('apps/good.tgz', good);
  const fx = await storeFixture(t);
  const source = new S3SlugSource({ log: fx.log, region: REGION, endpoint: s3.endpoint, forcePathStyle: true });
  t.teardown(() => source.destroy());
  const entry = await fx.makeStore({ sources: [source] }).ensure({ url: `s3://${BUCKET}/apps/good.tgz`, sha256: goodSha });
  t.equal(entry.files, GOOD_FILES, 'the fetch succeeded');
  t.same(imds.requests, [
    'PUT /latest/api/token',
    'GET /latest/meta-data/iam/security-credentials/',
    'GET /latest/meta-data/iam/security-credentials/slipway-agent-role',
  ], 'the SDK took its credentials from the fake IMDS, IMDSv2 style');
  t.notMatch(fx.logText(), /S3RVER/, 'no credentials in the logs');

  // With IMDS gone too, nothing in the chain has credentials: a retryable failure that says so.
  process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = 'http://127.0.0.1:9';
  const bare = new S3SlugSource({ log: fx.log, region: REGION, endpoint: s3.endpoint, forcePathStyle: true });
  t.teardown(() => bare.destroy());
  await t.rejects(bare.open(new URL(`s3://${BUCKET}/apps/good.tgz`), new AbortController().signal), {
    code: 'SLUG_FETCH_FAILED', retryable: true, message: /no AWS credentials/,
  });
});

const answers: Array<[string, { status: number; code: string; headers?: Record<string, string> }, string, boolean, number | undefined]> = [
  ['503 SlowDown with Retry-After: 3', { status: 503, code: 'SlowDown', headers: { 'retry-after': '3' } }, 'SLUG_FETCH_FAILED', true, 3000],
  ['503 SlowDown without Retry-After', { status: 503, code: 'SlowDown' }, 'SLUG_FETCH_FAILED', true, undefined],
  ['500 InternalError', { status: 500, code: 'InternalError' }, 'SLUG_FETCH_FAILED', true, undefined],
  ['403 AccessDenied', { status: 403, code: 'AccessDenied' }, 'SLUG_FORBIDDEN', false, undefined],
  ['403 SignatureDoesNotMatch', { status: 403, code: 'SignatureDoesNotMatch' }, 'SLUG_FORBIDDEN', false, undefined],
  ['404 NoSuchKey', { status: 404, code: 'NoSuchKey' }, 'SLUG_NOT_FOUND', false, undefined],
  ['400 InvalidRequest', { status: 400, code: 'InvalidRequest' }, 'SLUG_FETCH_FAILED', false, undefined],
];
t.test('S3 error answers s3rver cannot give map to stable codes (one attempt each)', async (t) => {
  const fake = await startFakeS3Errors(t);
  const fx = await storeFixture(t);
  const store = fx.makeStore({ sources: [s3Source(t, fx.log, fake.endpoint)] });
  for (const [name, answer, code, retryable, retryAfterMs] of answers) {
    fake.answer = answer;
    const before = fake.requests();
    const err = await store.ensure({ url: `s3://${BUCKET}/apps/x.tgz`, sha256: otherSha }).then(() => undefined, (e: unknown) => e);
    t.match(err, { code, retryable, message: new RegExp(answer.code) }, name);
    t.equal((err as { retryAfterMs?: number } | undefined)?.retryAfterMs, retryAfterMs, `${name}: retryAfterMs`);
    t.equal(fake.requests() - before, 1, `${name}: the SDK did not retry`);
  }
  t.same(await fx.storeNames(), []);
});

t.test('a body that stalls fails after stallTimeoutMs; so does an answer that never comes', async (t) => {
  const srv = await startServer(t, {
    [`/${BUCKET}/stall.tgz`]: { stall: big, bytes: 50_000 },
    [`/${BUCKET}/late.tgz`]: { body: big, delayMs: 3000 },
  });
  const fx = await storeFixture(t);
  const store = fx.makeStore({ sources: [s3Source(t, fx.log, srv.base, { stallTimeoutMs: 200 })] });
  await t.rejects(store.ensure({ url: `s3://${BUCKET}/stall.tgz`, sha256: bigSha }), { code: 'SLUG_FETCH_FAILED', retryable: true, message: /stalled: no data for 200 ms/ });
  const started = Date.now();
  await t.rejects(store.ensure({ url: `s3://${BUCKET}/late.tgz`, sha256: bigSha }), { code: 'SLUG_FETCH_FAILED', retryable: true, message: /no answer from S3 within 200 ms/ });
  t.ok(Date.now() - started < 2000, 'gave up long before the answer came');
  t.same(await fx.storeNames(), []);
});

t.test('a slow consumer is not a stall', async (t) => {
  const s3 = await startS3rver(t);
  await s3.put('big.tgz', big);
  const source = s3Source(t, capturingLogger().log, s3.endpoint, { stallTimeoutMs: 150 });
  const body = await source.open(new URL(`s3://${BUCKET}/big.tgz`), new AbortController().signal);
  await new Promise((resolve) => setTimeout(resolve, 500)); // nobody reads for 500 ms
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  t.equal(sha256(Buffer.concat(chunks)), bigSha);
});

t.test('a connection cut mid-body gives a retryable SLUG_FETCH_FAILED', async (t) => {
  const srv = await startServer(t, { [`/${BUCKET}/cut.tgz`]: { cut: big, bytes: 100_000 } });
  const fx = await storeFixture(t);
  const store = fx.makeStore({ sources: [s3Source(t, fx.log, srv.base)] });
  await t.rejects(store.ensure({ url: `s3://${BUCKET}/cut.tgz`, sha256: bigSha }), { code: 'SLUG_FETCH_FAILED', retryable: true });
  t.same(await fx.storeNames(), []);
});

t.test('the S3 source honours its AbortSignal before and during the body', async (t) => {
  const srv = await startServer(t, {
    [`/${BUCKET}/stall.tgz`]: { stall: big, bytes: 10_000 },
    [`/${BUCKET}/late.tgz`]: { body: big, delayMs: 5000 },
  });
  const source = s3Source(t, capturingLogger().log, srv.base);
  const controller = new AbortController();
  const body = await source.open(new URL(`s3://${BUCKET}/stall.tgz`), controller.signal);
  const failed = new Promise<unknown>((resolve) => body.on('error', resolve));
  body.resume();
  controller.abort(new Error('shutting down'));
  t.match(await failed, { code: 'SLUG_FETCH_FAILED', message: /shutting down/ });

  const waiting = new AbortController();
  const opening = source.open(new URL(`s3://${BUCKET}/late.tgz`), waiting.signal);
  setTimeout(() => waiting.abort(new Error('deadline')), 100);
  await t.rejects(opening, { code: 'SLUG_FETCH_FAILED', message: /deadline/ });

  const early = new AbortController();
  early.abort();
  await t.rejects(source.open(new URL(`s3://${BUCKET}/stall.tgz`), early.signal), { code: 'SLUG_FETCH_FAILED' });
});

t.test('invalid s3 URLs give SLUG_UNSUPPORTED_SOURCE without showing credentials', async (t) => {
  const fx = await storeFixture(t);
  const store = fx.makeStore({ sources: [s3Source(t, fx.log, 'http://127.0.0.1:9')] });
  for (const url of [
    's3:///apps/good.tgz',
    's3://slugs',
    's3://slugs/',
    's3://user:hunter2@slugs/apps/good.tgz',
    's3://slugs:9000/apps/good.tgz',
    's3://slugs/apps/good.tgz?versionId=3',
    's3://slugs/apps/good.tgz#frag',
    's3://slugs/apps/%E0%A4%A.tgz',
    's3://a/key',
    's3://bad_bucket!/key',
  ]) {
    const err = await store.ensure({ url, sha256: goodSha }).then(() => undefined, (e: unknown) => e);
    t.match(err, { code: 'SLUG_UNSUPPORTED_SOURCE', retryable: false }, url);
    t.notMatch((err as Error | undefined)?.message ?? '', /hunter2/, `${url}: no password in the message`);
  }
  t.same(parseS3Url(new URL('s3://slugs/a/b%2Fc%3Fd%23e+f.tgz')), { bucket: 'slugs', key: 'a/b/c?d#e+f.tgz' });
  t.notMatch(fx.logText(), /hunter2/);
});
