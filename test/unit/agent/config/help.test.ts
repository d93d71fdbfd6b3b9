import t from 'tap';
import { helpLine, optionLines } from '../../../../agent/config/help.js';

t.test('a help line: the text in its column, wrapped at 100', async (t) => {
  t.equal(helpLine('--x N', 'short'), `  --x N${' '.repeat(23)}short\n`);
  const long = helpLine('--y', Array.from({ length: 30 }, (_, i) => `word${i}`).join(' '));
  const lines = long.trimEnd().split('\n');
  t.ok(lines.length > 1);
  for (const l of lines) t.ok(l.length <= 100, l);
  for (const l of lines.slice(1)) t.match(l, /^ {30}\S/, 'continuations in the column');
  t.same(long.replace(/\s+/g, ' ').trim().split(' ').slice(1), Array.from({ length: 30 }, (_, i) => `word${i}`), 'no word lost');
  const wide = helpLine('--a-very-long-flag-name PLACEHOLDER', 'text');
  t.equal(wide, `  --a-very-long-flag-name PLACEHOLDER\n${' '.repeat(30)}text\n`, 'a long flag gets its own line');
});

t.test('options: --config (and what it is read for), the keys in schema order, own flags with help', async (t) => {
  const text = optionLines({ keys: ['cgroupParent', 'stateDir'], own: { quiet: { type: 'boolean', help: 'say less' }, hidden: { type: 'string' } } }, 'stateDir').replace(/\n {30}/g, ' ');
  t.match(text, /^ {2}--config FILE +JSON config, read for stateDir \(default \/etc\/slipway\/agent.json if present\)\n/);
  t.ok(text.indexOf('--state-dir DIR') < text.indexOf('--cgroup-parent PATH'), 'schema order');
  t.match(text, /--cgroup-parent PATH +parent cgroup of every dyno \(default: \/slipway\)/);
  t.match(text, /--quiet +say less/);
  t.notMatch(text, /hidden/, 'a flag its command describes itself');
});
