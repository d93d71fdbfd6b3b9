// Which coordinator URL the session dials next, and how long it waits (agent/link/url-rotation.ts).
// The backoff draws no randomness here (random() = 1: every delay is its full base).
import t from 'tap';
import { Backoff, RECONNECT_MAX_MS } from '../../../../agent/link/backoff.js';
import { UrlRotation } from '../../../../agent/link/url-rotation.js';

const A = 'ws://a.internal/v1/agent';
const B = 'ws://b.internal/v1/agent';
const C = 'ws://c.internal/v1/agent';

function rotation(urls: string[], random: () => number = () => 1): { r: UrlRotation; backoff: Backoff } {
  const backoff = new Backoff(250, RECONNECT_MAX_MS, random);
  return { r: new UrlRotation(urls, backoff), backoff };
}

t.test('one URL: every failure is a round, backed off exactly as a bare Backoff', async (t) => {
  const { r } = rotation([A]);
  const bare = new Backoff(250, RECONNECT_MAX_MS, () => 1);
  for (let i = 0; i < 5; i++) {
    t.same(r.failed(undefined, 0), { delayMs: bare.next(), namedByCoordinator: false, sameRound: false });
    t.equal(r.url, A);
  }
  t.same(r.failed(3_000, 10_000), { delayMs: bare.startFrom(3_000, 10_000), namedByCoordinator: true, sameRound: false }, 'a named time is the delay, as before the list existed');
  r.welcomed();
  t.same(r.dropped(undefined, 8_000), { delayMs: bare.spread(8_000), namedByCoordinator: false, sameRound: false }, 'a dropped link redials within the spread hint');
  t.same(r.dropped(undefined, 0), { delayMs: bare.next(), namedByCoordinator: false, sameRound: false }, 'no hint: the backoff');
  t.same(r.dropped(1_500, 8_000), { delayMs: bare.startFrom(1_500, 8_000), namedByCoordinator: true, sameRound: false });
});

t.test('several URLs: the next one at once, the wait only after a whole round, and the backoff counts rounds', async (t) => {
  const { r, backoff } = rotation([A, B, C]);
  t.equal(r.url, A, 'the first URL until one welcomed the agent');
  t.same(r.attempt, { dial: 1, of: 3 });
  t.same(r.failed(undefined, 0), { delayMs: 0, namedByCoordinator: false, sameRound: true });
  t.equal(r.url, B);
  t.same(r.attempt, { dial: 2, of: 3 });
  t.same(r.failed(undefined, 0), { delayMs: 0, namedByCoordinator: false, sameRound: true });
  t.equal(r.url, C);
  t.same(r.failed(undefined, 0), { delayMs: 250, namedByCoordinator: false, sameRound: false }, 'the round ended: the first step of the backoff');
  t.equal(r.url, A, 'the next round starts from the first URL again');
  t.equal(backoff.attempts, 1, 'three dials, one backoff step');
  r.failed(undefined, 0);
  r.failed(undefined, 0);
  t.same(r.failed(undefined, 0).delayMs, 375, 'the second round: the second step');
  t.equal(backoff.attempts, 2);
});

t.test('a round starts from the URL that welcomed the agent last', async (t) => {
  const { r } = rotation([A, B, C]);
  r.failed(undefined, 0);
  t.equal(r.url, B);
  r.welcomed();
  t.equal(r.preferredUrl, B);
  t.same(r.dropped(undefined, 0).sameRound, false);
  t.equal(r.url, C, 'after the leader (B) dropped the link, the next URL is dialled first: a follower takes over');
  r.failed(undefined, 0);
  t.equal(r.url, A, 'and the list wraps around');
  r.failed(undefined, 0);
  t.equal(r.url, B, 'the old leader last');
  t.same(r.failed(undefined, 0).sameRound, false, 'three failures: the round is over');
  t.equal(r.url, C, 'the next round starts from C again');
  r.failed(undefined, 0);
  r.welcomed();
  t.equal(r.preferredUrl, A, 'a new leader (A) moves the start of every round');
  r.dropped(undefined, 0);
  r.failed(undefined, 0);
  r.failed(undefined, 0);
  r.welcomed();
  t.equal(r.preferredUrl, A, 'after a blip the old leader welcomes again, its refused followers dialled first');
});

t.test('a named time speaks for its coordinator only: it ends a round only when every URL named one', async (t) => {
  const { r } = rotation([A, B]);
  t.same(r.failed(1_000, 0), { delayMs: 0, namedByCoordinator: false, sameRound: true }, "a follower's Retry-After does not hold up the next URL");
  t.same(r.failed(undefined, 0), { delayMs: 250, namedByCoordinator: false, sameRound: false }, 'B unreachable, named nothing: the own backoff');
  r.failed(4_000, 0);
  t.same(r.failed(2_000, 0), { delayMs: 2_000, namedByCoordinator: true, sameRound: false }, 'both named a time: the earliest');
  t.same(r.failed(undefined, 0).delayMs, 0);
  t.same(r.failed(undefined, 0).delayMs, 3_000, 'the backoff goes on from the named time (2000 x 1.5)');
});

t.test('the spread window holds for rounds after a drop, as for one URL', async (t) => {
  const draws = [0.5, 0, 0];
  const { r } = rotation([A, B], () => draws.shift() ?? 0);
  r.welcomed();
  t.same(r.dropped(undefined, 20_000).delayMs, 10_000, 'first redial at a random point of the hint');
  t.same(r.failed(undefined, 20_000).delayMs, 0, 'the leader is gone: the follower at once');
  t.ok(r.failed(undefined, 20_000).delayMs >= 10_000, 'the round failed: at least half the window again, not a quick retry');
});

t.test('a welcome ends the round: failures before it are forgotten', async (t) => {
  const { r } = rotation([A, B, C]);
  r.failed(undefined, 0);
  r.welcomed();
  t.same(r.attempt, { dial: 1, of: 3 });
  r.dropped(undefined, 0);
  t.same(r.failed(undefined, 0).sameRound, true, 'a full round of three dials again');
  t.same(r.failed(undefined, 0).sameRound, true);
  t.same(r.failed(undefined, 0).sameRound, false);
});

t.test('no URL is a programming error', async (t) => {
  t.throws(() => rotation([]), /no coordinator URL/);
});
