// `slipway-agent why [DYNO]`: the agent's reasons. With a dyno: its decisions (restarts
// scheduled, kills and their cause, admission refusals...) from `GET /v1/events?dyno=` and its
// last exits from `GET /v1/dynos/:id/exits`; without one, the recent decisions of the whole
// host. Exit records are printed field by field as they come (agent/dynos/ is where they are
// made): a field this CLI does not know goes in the OTHER column, a missing one is `-`.
import { age, bytes, cell, duration, table } from '../../../shared/tables.js';

type Json = Record<string, unknown>;
const obj = (v: unknown): Json => (v && typeof v === 'object' ? (v as Json) : {});

/** Decisions, oldest first (as the ring serves them). */
export function renderDecisions(decisions: unknown, now = Date.now(), hostWide = false): string {
  const list = Array.isArray(decisions) ? decisions.map(obj) : [];
  if (list.length === 0) return hostWide ? 'no decisions recorded by this agent process yet\n' : 'no decisions about this dyno recorded by this agent process\n';
  const rows = list.map((d) => {
    const data = obj(d.data);
    const numbers = Object.entries(data).map(([k, v]) => `${k}=${cell(v)}`).join(' ');
    return [`${age(typeof d.at === 'string' ? d.at : undefined, now)} ago`, cell(d.kind), cell(d.dyno ?? d.dynoId), cell(d.app), `${cell(d.message)}${numbers ? `  (${numbers})` : ''}`];
  });
  return table(['WHEN', 'KIND', 'DYNO', 'APP', 'WHY'], rows);
}

/** The exit record's fields this CLI names, in column order (agent/dynos/exit-records.ts). */
const EXIT_COLUMNS: readonly [string, string, (v: unknown, e: Json) => string][] = [
  ['at', 'WHEN', cell],
  ['cause', 'CAUSE', cell],
  ['code', 'CODE', cell],
  ['signal', 'SIGNAL', cell],
  ['reason', 'REASON', (v) => cell(obj(v).code ?? v)],
  ['oomKilled', 'OOM', (v) => (v === true ? 'yes' : v === false ? 'no' : cell(v))],
  ['peakMemoryBytes', 'PEAK', (v, e) => (typeof v === 'number' ? `${bytes(v)}${typeof e.quotaBytes === 'number' ? ` of ${bytes(e.quotaBytes)}` : ''}` : cell(v))],
  ['throttledPeriods', 'THROTTLED', cell],
  ['restartCount', 'RESTARTS', cell],
  ['bindMs', 'BIND', (v) => (typeof v === 'number' ? `${v} ms` : cell(v))],
  ['ranMs', 'RAN', (v) => (typeof v === 'number' ? duration(v) : cell(v))],
];
/** Named elsewhere (the heading, the PEAK column) or only for machines (--json has them). */
const NOT_OTHER = new Set([...EXIT_COLUMNS.map(([k]) => k), 'lines', 'dynoId', 'dyno', 'name', 'app', 'quotaBytes', 'incarnation', 'adopted', 'release']);

/** Exits, newest last; the newest one's last log lines below the table. */
export function renderExits(exits: unknown, now = Date.now()): string {
  const list = Array.isArray(exits) ? exits.map(obj) : [];
  if (list.length === 0) return 'no exits recorded\n';
  const rows = list.map((e) => [
    ...EXIT_COLUMNS.map(([k, , show]) => (k === 'at' && typeof e.at === 'string' ? `${age(e.at, now)} ago` : show(e[k], e))),
    Object.entries(e).filter(([k]) => !NOT_OTHER.has(k)).map(([k, v]) => `${k}=${cell(v)}`).join(' ') || '-',
  ]);
  let out = table([...EXIT_COLUMNS.map(([, h]) => h), 'OTHER'], rows);
  const last = list.at(-1)!;
  const lines = Array.isArray(last.lines) ? last.lines.filter((l): l is string => typeof l === 'string') : [];
  if (lines.length > 0) out += `\nlast lines before the latest exit:\n${lines.map((l) => `  ${l}\n`).join('')}`;
  return out;
}
