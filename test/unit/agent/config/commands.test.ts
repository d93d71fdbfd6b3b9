// `slipway-agent --help` is generated from the schema; here every flag it prints is parsed by
// its command's parser, with the value its help names as the default, which must come back as
// the schema's default.
import t from 'tap';
import { AGENT_USAGE, CLEANUP_FLAGS, SERVE_FLAGS } from '../../../../agent/config/commands.js';
import { parseCommandLine, type CommandFlags } from '../../../../agent/config/flags.js';
import { CONFIG_KEYS, DEFAULTS, keyMeta, keySchema } from '../../../../agent/config/schema.js';

/** The option lines of one "Options for X" section: flag, placeholder, and the default it names. */
function optionsOf(section: string): { flag: string; arg: string | undefined; shownDefault: string | undefined }[] {
  const start = AGENT_USAGE.indexOf(`Options for ${section}`);
  const end = AGENT_USAGE.indexOf('\n\n', start);
  const text = AGENT_USAGE.slice(start, end < 0 ? undefined : end).replace(/\n {30}/g, ' ');
  return [...text.matchAll(/^ {2}(?:-h, )?(--[a-z-]+)(?: (\S+))? {2,}(.*)$/gm)].map((m) => ({
    flag: m[1]!, arg: m[2], shownDefault: /\(default: ([^ )]+)\)$/.exec(m[3]!)?.[1],
  }));
}

/** Values for the flags whose keys have no static default (the help names none to try). */
const EXAMPLES: Record<string, string> = {
  '--coordinator': 'ws://127.0.0.1:7700/v1/agent', '--token-file': '/etc/slipway/coordinator.token', '--ca-file': '/ca.pem',
  '--agent-id': 'host-1', '--address': '10.1.2.3', '--config': '/etc/slipway/agent.json',
  '--coordinator-urls': 'ws://10.0.0.1:7700/v1/agent,ws://10.0.0.2:7700/v1/agent', '--zone': 'eu-west-1a',
};

function check(section: string, command: CommandFlags) {
  t.test(`every flag in --help for ${section} parses`, async (t) => {
    const options = optionsOf(section);
    const shown = new Set(options.map((o) => o.flag));
    for (const key of command.keys) t.ok(shown.has(`--${keyMeta(keySchema(key)).flag!.split(' ')[0]!.slice(2)}`), `${key}'s flag is in the help`);
    for (const { flag, arg, shownDefault } of options) {
      if (flag === '--help') continue;
      const key = CONFIG_KEYS.find((k) => keyMeta(keySchema(k)).flag?.split(' ')[0] === flag);
      const args = arg === undefined ? [flag] : [flag, shownDefault ?? EXAMPLES[flag] ?? ''];
      const parsed = parseCommandLine(args, command);
      if (key === undefined) continue; // --config and the command's own flags: parsed is enough
      if (shownDefault !== undefined && key in DEFAULTS) t.same(parsed.flags[key], DEFAULTS[key], `${flag} ${shownDefault} is the default`);
      else t.not(parsed.flags[key], undefined, `${flag} ${args[1]}`);
    }
  });
}
check('serve', SERVE_FLAGS);
check('cleanup', CLEANUP_FLAGS);

t.test('serve takes every key that has a flag; the help says which are required', async (t) => {
  t.same([...SERVE_FLAGS.keys], CONFIG_KEYS.filter((k) => keyMeta(keySchema(k)).flag));
  const unwrapped = AGENT_USAGE.replace(/\n {30}/g, ' ');
  // One of --coordinator and --coordinator-urls is required (resolve.ts), so neither says "required" alone.
  t.match(unwrapped, /--coordinator URL +.*\(default: env SLIPWAY_COORDINATOR_URL, else coordinatorUrls; one of the two is required\)\n/);
  t.match(unwrapped, /--coordinator-urls URL,URL +.*\(default: env SLIPWAY_COORDINATOR_URLS, else coordinatorUrl as a list of one; one of the two is required\)\n/);
  t.match(unwrapped, /--token-file FILE +.*\(required, or its content in env SLIPWAY_AGENT_TOKEN\)\n/);
  t.match(unwrapped, /--port-range MIN-MAX +.*\(default: 20000-29999\)\n/);
  t.match(unwrapped, /--stop-dynos-on-exit +stop every dyno/);
  t.notMatch(AGENT_USAGE, /`/, 'no Markdown in a terminal');
  for (const line of AGENT_USAGE.split('\n')) t.ok(line.length <= 100 || !line.includes(' '), `fits 100 columns: ${line}`);
});
