// Renders a resolved profile as an LXC seccomp policy, version 2 (lxc.container.conf(5),
// "SECCOMP CONFIGURATION"; the grammar below is what LXC 5.0's src/lxc/seccomp.c parses):
//
//   2                                  version
//   allowlist errno 1                  policy type and default action (kill|errno N|allow|trap)
//   # comment                          only as the first character of a line
//   NAME ACTION [ARG]...               ACTION: allow | errno N | kill | trap
//
// where ARG is `[index,value,OP]`, or `[index,value,SCMP_CMP_MASKED_EQ,mask]` meaning
// (arg & mask) == value. Each line is one libseccomp rule; the ARGs of a line must all hold.
// The action is always written out: LXC reads a bare `[` after the name as an unknown action.
// No section headers: the rules are already resolved for the host's arch, and on amd64 and
// arm64 hosts LXC adds every rule to the compat arches (x86 and x32, arm) itself, as runc
// does from the profile's architectures. Names unknown to the host's libseccomp are skipped
// by LXC (logged at INFO), as runc skips them.
import { EPERM, type DynoSeccomp, type SeccompAction, type SeccompArg, type SeccompRule } from './resolve.js';

/** LXC parses at most 6 conditions per line and argument indexes 0-5 (seccomp_data has 6
 * args); it reads the operator up to the first digit, so only these names are safe. */
const LXC_MAX_ARGS = 6;
const LXC_OPS = new Set(['SCMP_CMP_NE', 'SCMP_CMP_LT', 'SCMP_CMP_LE', 'SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT', 'SCMP_CMP_MASKED_EQ']);

function lxcAction(action: SeccompAction, errno: number | undefined): string {
  switch (action) {
    case 'SCMP_ACT_ALLOW': return 'allow';
    case 'SCMP_ACT_ERRNO': return `errno ${errno ?? EPERM}`;
    case 'SCMP_ACT_KILL': return 'kill';
    case 'SCMP_ACT_TRAP': return 'trap';
  }
}

function expressible(args: SeccompArg[]): boolean {
  return args.length <= LXC_MAX_ARGS && args.every((a) => a.index < LXC_MAX_ARGS && LXC_OPS.has(a.op));
}

function lxcArg(a: SeccompArg): string {
  return a.op === 'SCMP_CMP_MASKED_EQ' ? `[${a.index},${a.valueTwo},${a.op},${a.value}]` : `[${a.index},${a.value},${a.op}]`;
}

function ruleLines(r: SeccompRule): string[] {
  const act = lxcAction(r.action, r.errno);
  if (expressible(r.args)) {
    const args = r.args.map(lxcArg).join('');
    return r.names.map((n) => (args ? `${n} ${act} ${args}` : `${n} ${act}`));
  }
  // Conditions LXC cannot express resolve towards denial: an allow rule is left out (the
  // default action then refuses the call), a refusing rule is applied without its conditions
  // (it then refuses more calls than the profile says, never fewer).
  const note = `# ${r.names.join(' ')}: conditions LXC cannot express; ${r.action === 'SCMP_ACT_ALLOW' ? 'not allowed' : 'refused unconditionally'}`;
  return r.action === 'SCMP_ACT_ALLOW' ? [note] : [note, ...r.names.map((n) => `${n} ${act}`)];
}

export function renderLxcPolicy(p: DynoSeccomp, source: string): string {
  return [
    '2',
    `allowlist ${lxcAction(p.defaultAction, p.defaultErrno)}`,
    `# Written by slipway: ${source}, resolved for ${p.architectures.join(' ')}.`,
    ...p.rules.flatMap(ruleLines),
  ].join('\n') + '\n';
}
