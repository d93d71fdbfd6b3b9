// The flags of `slipway-agent serve` and `cleanup`, and the agent's --help. `serve` takes every
// config key that has a flag in the schema (agent/config/schema.ts); the operator commands name
// the few they need (agent/cli/slug.ts, agent/cli/stack.ts). Kept out of agent/main.ts so that
// tests can check the help text against the parsers without starting the agent.
import { CONFIG_KEYS } from './schema.js';
import { flagOf, type CommandFlags } from './flags.js';
import { helpLine, optionLines } from './help.js';

export const SERVE_FLAGS = {
  keys: CONFIG_KEYS.filter((k) => flagOf(k) !== undefined),
  own: { 'stop-dynos-on-exit': { type: 'boolean', help: 'stop every dyno (with grace) when the agent is asked to exit' } },
} as const satisfies CommandFlags;

export const CLEANUP_FLAGS = { keys: ['stateDir', 'cgroupParent'] } as const satisfies CommandFlags;

export const AGENT_USAGE = `Usage: slipway-agent <command> [options]

Commands:
  serve      Run the agent: dial the coordinator, run its dynos, serve diagnostics.
  cleanup    Remove every dyno container, mount and directory under the state dir.
  slug       Fetch, list and garbage-collect the slug cache (slipway-agent slug --help).
  stack      Import and list stacks (slipway-agent stack --help).
  dyno run   Run a one-off dyno on this host and exit with its exit code
             (slipway-agent dyno run --help).
  version    Print the version.

Options for serve (flags override the config file):
${optionLines(SERVE_FLAGS)}${helpLine('-h, --help', 'this text')}
Options for cleanup:
${optionLines(CLEANUP_FLAGS, 'stateDir and cgroupParent')}`;
