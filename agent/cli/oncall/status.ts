// `slipway-agent status` and `slipway-agent dynos`: the agent's `/v1/status` and `/v1/dynos` as
// a person on call reads them. The renderers are pure (unit-tested with recorded answers); the
// shapes are read defensively, so that an agent one version apart still prints what it has.
import { age, bytes, fields, plural, table } from '../../../shared/tables.js';

type Json = Record<string, unknown>;
const obj = (v: unknown): Json => (v && typeof v === 'object' ? (v as Json) : {});
const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** `/v1/status`: {agent, capacity, link, dynos, pressure}. */
export function renderStatus(status: unknown, now = Date.now()): string {
  const s = obj(status);
  const agent = obj(s.agent);
  const cap = obj(s.capacity);
  const mem = obj(cap.memory);
  const cpu = obj(cap.cpu);
  const link = obj(s.link);
  const cache = obj(cap.slugCache);
  const pressure = obj(s.pressure);
  const ec2 = obj(agent.ec2);
  const out: [string, string][] = [
    ['agent', [str(agent.id) ?? '?', `version ${str(agent.version) ?? '?'}`, `runtime ${str(agent.runtime) ?? '?'}`, `address ${str(agent.address) ?? '?'}`].join('  ')],
  ];
  if (str(ec2.instanceId)) out.push(['ec2', [ec2.instanceId, ec2.instanceType, ec2.availabilityZone].filter((x) => typeof x === 'string').join('  ')]);
  const since = str(link.connectedSince);
  const state = str(link.state) ?? '?';
  out.push(['link', [
    state === 'ready' && since ? `ready for ${age(since, now)}` : state,
    plural(num(link.reconnects) ?? 0, 'reconnect'),
    plural(num(link.unackedEvents) ?? 0, 'unacked event'),
    ...(state !== 'ready' && str(link.lastError) ? [`last error: ${str(link.lastError)}`] : []),
  ].join(', ')]);
  const journal = obj(link.journal);
  if (journal.ok === false) out.push(['journal', `failing: ${str(journal.lastError) ?? 'unknown error'}`]);
  if (num(mem.allocatableBytes) !== undefined) {
    out.push(['memory', `${bytes(num(mem.committedBytes) ?? 0)} committed of ${bytes(num(mem.allocatableBytes)!)} allocatable`
      + ` (${bytes(num(mem.totalBytes) ?? 0)} total, ${bytes(num(mem.reservedBytes) ?? 0)} reserved), ${bytes(num(mem.usedBytes) ?? 0)} used`]);
  }
  if (num(cpu.cores) !== undefined) out.push(['cpu', `${cpu.cores as number} cores, load ${(num(cpu.load1) ?? 0).toFixed(2)}`]);
  out.push(['dynos', String(num(s.dynos) ?? num(cap.dynoCount) ?? 0)]);
  if (num(cache.budgetBytes) !== undefined) {
    out.push(['slug cache', `${plural(num(cache.entries) ?? 0, 'slug')}, ${bytes(num(cache.bytes) ?? 0)} of ${bytes(num(cache.budgetBytes)!)}, ${bytes(num(cache.freeBytes) ?? 0)} free on its disk`]);
  }
  const refused = str(pressure.code);
  out.push(['accepting', cap.accepting === false ? `no${refused ? `: ${refused} ${str(pressure.message) ?? ''}`.trimEnd() : ' (draining)'}` : 'yes']);
  const notices = Array.isArray(cap.notices) ? cap.notices.map(obj) : [];
  for (const n of notices) out.push(['notice', [str(n.notice), n.deadline ? `deadline ${str(n.deadline)}` : undefined, `seen ${age(str(n.noticedAt), now)} ago`].filter(Boolean).join('  ')]);
  return fields(out);
}

/** `/v1/dynos`: DynoStatus plus runtime info (containerId, pid, network). */
export function renderDynos(dynos: unknown, now = Date.now()): string {
  const list = Array.isArray(dynos) ? dynos.map(obj) : [];
  if (list.length === 0) return 'no dynos on this host\n';
  const rows = list.map((d) => {
    const endpoint = obj(d.endpoint);
    const exit = obj(d.exit);
    const reason = obj(d.reason);
    const why = str(reason.code) ?? (d.exit ? `exit ${num(exit.code) ?? str(exit.signal) ?? '?'}` : undefined);
    return [
      str(d.name), str(d.app), str(d.state), age(str(d.since), now), `${num(d.memoryMb) ?? '?'} MB`,
      num(d.pid) !== undefined ? String(d.pid) : undefined,
      str(obj(d.network).address),
      str(endpoint.host) ? `${endpoint.host as string}:${String(endpoint.port)}` : undefined,
      str(d.release), why, str(d.id),
    ];
  });
  return table(['NAME', 'APP', 'STATE', 'FOR', 'MEMORY', 'PID', 'ADDRESS', 'ENDPOINT', 'RELEASE', 'REASON', 'ID'], rows);
}
