// The small shell scripts the LXC driver writes per dyno. Pure text builders; the driver
// writes them with the modes noted below.
//
// 1. `entry` (in the dyno's rootfs as /.slipway-entry, owned by the dyno user, 0500): sets
//    the dyno's env and execs its args. LXC's own `lxc.environment` is one line per value, and
//    config vars may hold newlines (PEM keys), and lxc-execute's argv is readable by every host
//    user in `ps`: so neither env nor command goes on LXC's command line or config.
// 2. `runtime` (0700): the OCI-runtime face conmon expects. conmon runs `RUNTIME create
//    --bundle DIR --pid-file FILE ID`, hands its stdio pipes to that process and waits for it;
//    the shim mounts the dyno's overlay (overlay.ts: overlayMountLine), starts lxc-execute in
//    the background, writes its pid, and exits. conmon, a
//    subreaper, adopts it, logs its output (k8s-file) and records its exit status, exactly as
//    for runc (whose driver likewise creates and starts in one step). lxc-execute's exit
//    status is the dyno's (init.lxc reports the child's status; 128+N for a signal).
// 3. `stop-hook` (0700): LXC runs it after the dyno's processes are gone and before it removes
//    the cgroup; it saves the OOM counter for the driver's wait().

import { shellQuote } from '../../../shared/shell-quote.js';

export { shellQuote };

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function entryScript(env: string[], args: string[]): string {
  const lines = ['#!/bin/sh', '# Written by slipway for this dyno: its env, then its command.'];
  for (const kv of env) {
    const i = kv.indexOf('=');
    const name = i < 0 ? kv : kv.slice(0, i);
    if (!ENV_NAME.test(name)) throw new Error(`env name ${JSON.stringify(name)} is not a shell name`);
    lines.push(`export ${name}=${shellQuote(i < 0 ? '' : kv.slice(i + 1))}`);
  }
  // LXC adds `container=lxc` to init's env; runc and Docker dynos do not see it.
  lines.push('unset container');
  lines.push(`exec ${args.map(shellQuote).join(' ')}`);
  return lines.join('\n') + '\n';
}

/**
 * `gate`: an attached dyno (ContainerSpec.stdio). The background process first waits for a
 * line on that fifo, which the driver writes once its attach relay is connected to conmon, and
 * only then execs lxc-execute (so the pid written stays lxc-execute's): nothing the command
 * prints early is missed. An asynchronous list gets /dev/null as its stdin, so conmon's stdin
 * pipe is passed on as fd 3.
 */
export function runtimeShim(p: { containerId: string; lxcPath: string; config: string; mountLine: string; gate?: string }): string {
  const execute = `lxc-execute -n ${shellQuote(p.containerId)} -P ${shellQuote(p.lxcPath)} -f ${shellQuote(p.config)} -- /bin/sh /.slipway-entry`;
  const launch = p.gate === undefined
    ? `${execute} &`
    : `rm -f ${shellQuote(p.gate)}
mkfifo -m 600 ${shellQuote(p.gate)} || exit 1
exec 3<&0
{ read -r slipway_go < ${shellQuote(p.gate)}; exec ${execute} 0<&3 3<&-; } &
exec 3<&-`;
  return `#!/bin/sh
# conmon's OCI runtime interface over lxc-execute (agent/runtime/lxc/scripts.ts). Only
# "create" is used: the agent starts, signals and deletes the dyno itself.
while [ $# -gt 0 ]; do case "$1" in --*) shift ;; *) break ;; esac; done
[ "$1" = create ] || { echo "slipway lxc shim: unsupported command $1" >&2; exit 1; }
shift
bundle=; pidfile=
while [ $# -gt 1 ]; do
  case "$1" in
    --bundle|-b) bundle=$2; shift 2 ;;
    --pid-file) pidfile=$2; shift 2 ;;
    *) shift ;;
  esac
done
[ -n "$bundle" ] && [ -n "$pidfile" ] || { echo "slipway lxc shim: --bundle and --pid-file are required" >&2; exit 1; }
${p.mountLine}
${launch}
echo $! > "$pidfile"
`;
}


/** Saves the counter file of the dyno's memory cgroup (v1 memory.oom_control, v2
 * memory.events) as `<dir>/oom`, atomically. */
export function stopHookScript(p: { counterFile: string; out: string }): string {
  return `#!/bin/sh\ncat ${shellQuote(p.counterFile)} > ${shellQuote(p.out + '.tmp')} 2>/dev/null && mv ${shellQuote(p.out + '.tmp')} ${shellQuote(p.out)}\nexit 0\n`;
}
