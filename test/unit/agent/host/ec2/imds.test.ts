// The IMDSv2 client against the fake metadata service on loopback (test/helpers/fake-imds.ts):
// one token for many requests, renewed before it expires and after a 401, every request
// bounded when the service is silent, never a request without a token (no IMDSv1), and a 404
// read as "absent".
import t from 'tap';
import { performance } from 'node:perf_hooks';
import { ImdsClient, TOKEN_RENEW_BEFORE_MS } from '../../../../../agent/host/ec2/imds.js';
import { SlipwayError } from '../../../../../shared/errors.js';
import { startFakeImds } from '../../../../helpers/fake-imds.js';

t.test('one token serves many requests; it is renewed before it expires', async (t) => {
  const fake = await startFakeImds(t);
  let now = 0;
  const client = new ImdsClient({ endpoint: fake.url, ttlSeconds: 300, now: () => now });
  for (let i = 0; i < 5; i++) t.equal(await client.get('/latest/meta-data/instance-id'), fake.identity.instanceId);
  t.equal(fake.counts.tokenPuts, 1, 'five GETs, one token PUT');
  await Promise.all([1, 2, 3].map(() => client.get('/latest/meta-data/instance-type')));
  t.equal(fake.counts.tokenPuts, 1, 'concurrent GETs share the token');
  now = 300_000 - TOKEN_RENEW_BEFORE_MS + 1;
  t.equal(await client.get('/latest/meta-data/local-ipv4'), fake.identity.privateIp);
  t.equal(fake.counts.tokenPuts, 2, 'renewed within TOKEN_RENEW_BEFORE_MS of its expiry');
  t.equal(fake.counts.unauthorized, 0, 'no request ever carried an expired token');
  t.equal(fake.counts.withoutToken, 0);
});

t.test('a 401 (the service forgot the token) gets one new token and one more try', async (t) => {
  const fake = await startFakeImds(t);
  const client = new ImdsClient({ endpoint: fake.url });
  t.equal(await client.get('/latest/meta-data/instance-id'), fake.identity.instanceId);
  fake.revokeTokens();
  t.equal(await client.get('/latest/meta-data/instance-id'), fake.identity.instanceId, 'answered after the renewal');
  t.equal(fake.counts.tokenPuts, 2);
  t.equal(fake.counts.unauthorized, 1);
  t.equal(fake.counts.withoutToken, 0, 'never an IMDSv1 request');
});

t.test('404 is absent, not an error; other statuses are IMDS_UNAVAILABLE', async (t) => {
  const fake = await startFakeImds(t);
  const client = new ImdsClient({ endpoint: fake.url });
  t.equal(await client.get('/latest/meta-data/spot/instance-action'), undefined);
  t.equal(await client.getJson('/latest/meta-data/events/recommendations/rebalance'), undefined);
  fake.failWith = 503;
  await t.rejects(client.get('/latest/meta-data/instance-id'), { code: 'IMDS_UNAVAILABLE' });
});

t.test('a body that is not JSON is IMDS_BAD_RESPONSE', async (t) => {
  const fake = await startFakeImds(t);
  const client = new ImdsClient({ endpoint: fake.url });
  fake.spotAction = '{"action": "terminate", ';
  await t.rejects(client.getJson('/latest/meta-data/spot/instance-action'), { code: 'IMDS_BAD_RESPONSE' });
});

t.test('a silent service: the token PUT and each GET end at their bound', async (t) => {
  const fake = await startFakeImds(t);
  const client = new ImdsClient({ endpoint: fake.url, tokenTimeoutMs: 200, requestTimeoutMs: 300 });
  fake.silent = true;
  let started = performance.now();
  await t.rejects(client.get('/latest/meta-data/instance-id'), { code: 'IMDS_TIMEOUT' });
  let took = performance.now() - started;
  t.ok(took >= 190 && took < 1500, `the token PUT gave up after ${Math.round(took)} ms (bound 200)`);
  t.equal(fake.counts.gets, 0, 'without a token no GET was sent: no fallback to IMDSv1');

  fake.silent = false;
  t.equal(await client.get('/latest/meta-data/instance-id'), fake.identity.instanceId, 'the service answers again');
  fake.silent = true;
  started = performance.now();
  const err = await client.get('/latest/meta-data/spot/instance-action').then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof SlipwayError && err.code === 'IMDS_TIMEOUT', 'IMDS_TIMEOUT');
  took = performance.now() - started;
  t.ok(took >= 290 && took < 1500, `a GET with a token gave up after ${Math.round(took)} ms (bound 300)`);
  t.equal(fake.counts.withoutToken, 0);
});

t.test('probe: true when the token endpoint answers, false (bounded) when nothing does', async (t) => {
  const fake = await startFakeImds(t);
  t.equal(await new ImdsClient({ endpoint: fake.url }).probe(), true);
  fake.silent = true;
  const started = performance.now();
  t.equal(await new ImdsClient({ endpoint: fake.url }).probe(200), false);
  t.ok(performance.now() - started < 1000, 'a silent endpoint costs the probe its bound');
  await fake.close();
  t.equal(await new ImdsClient({ endpoint: fake.url }).probe(200), false, 'a closed port: false at once');
});
