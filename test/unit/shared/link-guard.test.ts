import t from 'tap';
import { MessageBudget } from '../../../shared/link-guard.js';

t.test('the message budget allows a burst, then the refill rate, and refuses a flood', async (t) => {
  let now = 0;
  const budget = new MessageBudget(100, 10, () => now);
  let taken = 0;
  while (budget.take()) taken++;
  t.equal(taken, 10, 'the burst');
  now += 50; // 50 ms at 100 a second: 5 more
  taken = 0;
  while (budget.take()) taken++;
  t.equal(taken, 5);
  now += 60_000;
  taken = 0;
  while (budget.take()) taken++;
  t.equal(taken, 10, 'an idle minute refills to the burst, not beyond');
});
