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

// The on-call commands (agent/cli/oncall/): they read the agent's diagnostics endpoint at
// diagnosticsListen with the token under the state dir, so they take the keys that find those.
const JSON_FLAG = { type: 'boolean', help: "print the endpoint's JSON instead of a table" } as const;
export const STATUS_FLAGS = { keys: ['stateDir', 'diagnosticsListen'], own: { json: JSON_FLAG } } as const satisfies CommandFlags;
export const LOGS_FLAGS = {
  keys: ['stateDir', 'diagnosticsListen'], positionals: true,
  own: {
    json: { type: 'boolean', help: 'logs: one JSON object a line ({"line"}, {"dropped"}, {"end"})' },
    follow: { type: 'boolean', help: 'logs: -f, keep printing lines as the dyno writes them' },
    lines: { type: 'string', arg: 'N', help: 'logs: the last N lines first (default 100, at most 1500)' },
  },
} as const satisfies CommandFlags;
export const WHY_FLAGS = {
  keys: ['stateDir', 'diagnosticsListen'], positionals: true,
  own: { json: JSON_FLAG, limit: { type: 'string', arg: 'N', help: 'why: the last N decisions (default 50, at most 500)' } },
} as const satisfies CommandFlags;
// doctor checks the host from its config, with or without a running agent.
export const DOCTOR_FLAGS = {
  keys: ['coordinatorUrl', 'coordinatorUrls', 'tokenFile', 'caFile', 'stateDir', 'cgroupParent', 'runtime', 'diagnosticsListen'],
  own: {
    json: { type: 'boolean', help: 'doctor: print {ok, checks: [{status, check, detail}]}' },
    stack: { type: 'string', multiple: true, arg: 'NAME', help: 'doctor: a stack this host must have (repeatable; default: those its dynos use)' },
  },
} as const satisfies CommandFlags;

export const AGENT_USAGE = `Usage: slipway-agent <command> [options]

Commands:
  serve      Run the agent: dial the coordinator, run its dynos, serve diagnostics.
  cleanup    Remove every dyno container, mount and directory under the state dir.
  slug       Fetch, list and garbage-collect the slug cache (slipway-agent slug --help).
  stack      Import and list stacks (slipway-agent stack --help).
  dyno run   Run a one-off dyno on this host and exit with its exit code
             (slipway-agent dyno run --help).
  version    Print the version.

On call (read the running agent's diagnostics endpoint; exit 1 with CODE: message on failure):
  status     The agent: identity, coordinator link, memory, slug cache, whether it accepts dynos.
  dynos      The dynos on this host: state, memory, pid, address, endpoint.
  logs DYNO  A dyno's last lines (DYNO: web.1, APP/web.1 or its id); -f follows them.
  why [DYNO] The agent's decisions about DYNO and its last exits; without DYNO, the host's.
  doctor     Check what breaks hosts: runtimes, cgroups, overlayfs, disk, state dir, coordinator
             (reach, TLS, token, clock), stacks, netfilter, EC2 metadata. Needs no agent.

Options for serve (flags override the config file):
${optionLines(SERVE_FLAGS)}${helpLine('-h, --help', 'this text')}
Options for cleanup:
${optionLines(CLEANUP_FLAGS, 'stateDir and cgroupParent')}
Options for status, dynos, logs and why:
${optionLines({ keys: LOGS_FLAGS.keys, own: { ...LOGS_FLAGS.own, limit: WHY_FLAGS.own.limit } }, 'stateDir, diagnosticsListen and diagnosticsTokenFile')}
Options for doctor (and any key of the config file):
${optionLines(DOCTOR_FLAGS)}`;
