// The developer CLI's commands, each over the coordinator's API (coordinator/http-api.ts) and
// nothing else: an app's developer never logs into a host. Each prints text for a person by
// default and, with --json, the API's own JSON (one document; `logs --json` one JSON object
// per line). Parsing and rendering are pure functions (unit-tested); what talks to the API
// takes an ApiClient.
import type { Writable } from 'node:stream';
import { SlipwayError } from '../shared/errors.js';
import { age, table } from '../shared/tables.js';
import { API_CHANGE_TIMEOUT_MS, type ApiClient } from './api-client.js';
import { oneOffCommand } from '../shared/shell-quote.js';
import { attachSession, exitCodeOf, legUrl, type AttachSessionOptions } from './attach-session.js';

export interface AppView {
  name: string;
  formation: { type: string; quantity: number; size: string }[];
  dynos: { up: number; total: number };
}

export interface DynoView {
  id: string;
  name: string;
  type: string;
  state: string;
  since: string;
  agentId: string;
  size?: string;
  command?: string;
  exit?: { code: number | null; signal: string | null };
  reason?: { code: string; message: string };
}

export interface FormationResult {
  type: string;
  quantity: number;
  dynos: { name: string; state: string }[];
}

export function renderApps(apps: readonly AppView[]): string {
  if (apps.length === 0) return 'No apps. Create one with PUT /apps/APP/formation/TYPE (see the README).\n';
  return table(['APP', 'FORMATION', 'DYNOS UP'], apps.map((a) => [
    a.name,
    a.formation.map((f) => `${f.type}=${f.quantity}:${f.size}`).join(' ') || '-',
    `${a.dynos.up}/${a.dynos.total}`,
  ]));
}

/** Heroku's ps: the dynos of each process type under a `=== type (size): command (n)` line. */
export function renderPs(dynos: readonly DynoView[], now = Date.now()): string {
  if (dynos.length === 0) return 'No dynos. Scale one up with slipway scale -a APP web=1.\n';
  const byType = new Map<string, DynoView[]>();
  for (const d of dynos) byType.set(d.type, [...(byType.get(d.type) ?? []), d]);
  let out = '';
  for (const [type, list] of byType) {
    const first = list[0]!;
    out += `=== ${type} (${first.size ?? '?'}): ${first.command ?? '?'} (${list.length})\n`;
    for (const d of list) {
      const why = d.reason ? ` (${d.reason.code})` : d.exit ? ` (exit ${d.exit.code ?? d.exit.signal ?? '?'})` : '';
      out += `${d.name}: ${d.state}${why} ${d.since} (~ ${age(d.since, now)} ago)\n`;
    }
    out += '\n';
  }
  return out;
}

/** `web=3 worker=1:standard-2x` as the API's updates. */
export function parseScaleArgs(args: readonly string[]): { type: string; quantity?: number; size?: string }[] {
  if (args.length === 0) throw new SlipwayError('CONFIG_INVALID', 'scale needs TYPE=QUANTITY[:SIZE] (slipway scale -a APP web=2 worker=1)');
  return args.map((arg) => {
    const m = /^([A-Za-z0-9_-]+)(?:=(\d+))?(?::([a-z0-9-]+))?$/.exec(arg);
    if (!m || (m[2] === undefined && m[3] === undefined)) throw new SlipwayError('CONFIG_INVALID', `scale wants TYPE=QUANTITY, TYPE=QUANTITY:SIZE or TYPE:SIZE, got ${JSON.stringify(arg)}`);
    return { type: m[1]!, ...(m[2] !== undefined ? { quantity: Number(m[2]) } : {}), ...(m[3] !== undefined ? { size: m[3] } : {}) };
  });
}

export function renderScale(results: readonly FormationResult[], sizes: ReadonlyMap<string, string>): string {
  return `Scaling dynos... done, now running ${results.map((r) => `${r.type} at ${r.quantity}:${sizes.get(r.type) ?? '?'}`).join(', ')}\n`;
}

export interface CommandContext {
  api: ApiClient;
  app: string;
  json: boolean;
  out: Writable;
}

export async function appsCommand(c: Omit<CommandContext, 'app'>): Promise<number> {
  const apps = await c.api.json<AppView[]>('GET', '/apps');
  c.out.write(c.json ? `${JSON.stringify(apps)}\n` : renderApps(apps));
  return 0;
}

export async function psCommand(c: CommandContext): Promise<number> {
  const dynos = await c.api.json<DynoView[]>('GET', `/apps/${encodeURIComponent(c.app)}/dynos`);
  c.out.write(c.json ? `${JSON.stringify(dynos)}\n` : renderPs(dynos));
  return 0;
}

export async function scaleCommand(c: CommandContext, args: readonly string[]): Promise<number> {
  const updates = parseScaleArgs(args);
  const results = await c.api.json<FormationResult[]>('PATCH', `/apps/${encodeURIComponent(c.app)}/formation`, { updates }, API_CHANGE_TIMEOUT_MS);
  if (c.json) {
    c.out.write(`${JSON.stringify(results)}\n`);
    return 0;
  }
  const formation = await c.api.json<{ type: string; size: string }[]>('GET', `/apps/${encodeURIComponent(c.app)}/formation`);
  c.out.write(renderScale(results, new Map(formation.map((f) => [f.type, f.size]))));
  return 0;
}

export async function restartCommand(c: CommandContext, dyno: string | undefined): Promise<number> {
  const path = `/apps/${encodeURIComponent(c.app)}/dynos${dyno === undefined ? '' : `/${encodeURIComponent(dyno)}`}`;
  const result = await c.api.json<{ restarted: string[] }>('DELETE', path, undefined, API_CHANGE_TIMEOUT_MS);
  c.out.write(c.json ? `${JSON.stringify(result)}\n` : `Restarting ${dyno ?? 'all'} dynos on ${c.app}... done (${result.restarted.join(', ') || 'none were running'})\n`);
  return 0;
}

export interface LogsOptions {
  lines: number;
  tail: boolean;
  dyno?: string;
  source?: 'app' | 'slipway';
}

/** The query of GET /apps/:app/logs. */
export function logsQuery(o: LogsOptions, lines = o.lines): string {
  const q = new URLSearchParams({ lines: String(lines) });
  if (o.dyno !== undefined) q.set('dyno', o.dyno);
  if (o.source !== undefined) q.set('source', o.source);
  if (o.tail) q.set('tail', '1');
  return q.toString();
}

/** `logs --json`: a shipped line `TIMESTAMP source[dyno]: text` as an object. */
export function logLineJson(line: string): string {
  const m = /^(\S+) ([a-z]+)\[([^\]]+)\]: ([\s\S]*)$/.exec(line);
  return JSON.stringify(m ? { time: m[1], source: m[2], dyno: m[3], message: m[4] } : { message: line });
}

/** How long `logs --tail` waits before dialling again after its session ended or broke, and
 * how many broken sessions in a row it takes before giving up. */
export const TAIL_REDIAL_MS = [250, 1_000, 2_000, 5_000, 10_000] as const;

export async function logsCommand(c: CommandContext, o: LogsOptions): Promise<number> {
  const base = `/apps/${encodeURIComponent(c.app)}/logs`;
  let failures = 0;
  let lines = o.lines;
  for (;;) {
    try {
      const res = await c.api.stream(`${base}?${logsQuery(o, lines)}`);
      failures = 0;
      await pipeLines(res, c.out, c.json);
    } catch (err) {
      // Only a session that breaks is retried, never a refusal (a bad token, an unknown app).
      if (!o.tail || !(err instanceof SlipwayError) || (err.code !== 'COORDINATOR_UNREACHABLE' && err.code !== 'COORDINATOR_TIMEOUT' && err.code !== 'COORDINATOR_NOT_LEADER')) throw err;
      if (failures >= TAIL_REDIAL_MS.length) throw err;
      failures++;
    }
    if (!o.tail) return 0;
    // The session ended (its bound, a failover): dial again for new lines only.
    lines = 0;
    await new Promise((r) => setTimeout(r, TAIL_REDIAL_MS[Math.max(0, failures - 1)]));
  }
}

function pipeLines(res: NodeJS.ReadableStream, out: Writable, json: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    let rest = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      const text = rest + chunk;
      const lines = text.split('\n');
      rest = lines.pop() ?? '';
      if (lines.length === 0) return;
      const ok = out.write(json ? lines.map((l) => `${logLineJson(l)}\n`).join('') : `${lines.join('\n')}\n`);
      // A slow terminal or pipe pushes back to the coordinator, which drops (and counts) lines.
      if (!ok) {
        res.pause();
        out.once('drain', () => res.resume());
      }
    });
    res.on('end', () => {
      if (rest !== '') out.write(json ? `${logLineJson(rest)}\n` : `${rest}\n`);
      resolve();
    });
    res.on('error', (err: Error) => reject(new SlipwayError('COORDINATOR_UNREACHABLE', `the log stream from the coordinator broke: ${err.message}`, { cause: err })));
  });
}

/** `--env NAME=VALUE` words as config vars. */
export function parseEnvArgs(words: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const kv of words) {
    const i = kv.indexOf('=');
    if (i < 1 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(kv.slice(0, i))) throw new SlipwayError('CONFIG_INVALID', `--env wants NAME=VALUE, got ${JSON.stringify(kv.split('=')[0])}`);
    env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return env;
}

export interface RunOptions {
  size?: string;
  env?: Record<string, string>;
}

function oneOffBody(words: readonly string[], o: RunOptions): { command: string; size?: string; env?: Record<string, string> } {
  if (words.length === 0) throw new SlipwayError('CONFIG_INVALID', 'run needs a command: slipway run -a APP [--detach] -- COMMAND');
  return { command: oneOffCommand(words), ...(o.size !== undefined ? { size: o.size } : {}), ...(o.env && Object.keys(o.env).length > 0 ? { env: o.env } : {}) };
}

/** `run -- WORDS` (attached): the one-off dyno's stdio is this terminal's (attach-session.ts)
 * and its exit code this process's. The `Running ...` line goes to stderr: stdout is the
 * command's own. */
export async function runAttachedCommand(c: CommandContext, words: readonly string[], o: RunOptions & { terminal: Omit<AttachSessionOptions, 'url' | 'secret' | 'ca'>; ca?: string; err: Writable }): Promise<number> {
  const body = oneOffBody(words, o);
  const { tty, stdout } = o.terminal;
  const size = tty && stdout.columns && stdout.rows ? { cols: stdout.columns, rows: stdout.rows } : {};
  const dyno = await c.api.json<DynoView & { attach?: { path: string; secret: string } }>('POST', `/apps/${encodeURIComponent(c.app)}/dynos`, { ...body, attach: true, tty, ...size }, API_CHANGE_TIMEOUT_MS);
  if (!dyno.attach) throw new SlipwayError('INTERNAL', 'the coordinator answered an attached run without its rendezvous (an older coordinator?): use --detach');
  const { attach, ...view } = dyno;
  o.err.write(c.json ? `${JSON.stringify(view)}\n` : `Running ${body.command} on ${c.app}... ${dyno.state}, ${dyno.name}\n`);
  const exit = await attachSession({ ...o.terminal, url: legUrl(c.api.url, attach.path), secret: attach.secret, ...(o.ca !== undefined ? { ca: o.ca } : {}) });
  if (exit.oomKilled) o.err.write(`${dyno.name} was killed: it ran out of memory (R15)\n`);
  return exitCodeOf(exit);
}

/** `run --detach -- WORDS`: a one-off dyno whose output goes to the app's logs. */
export async function runDetachedCommand(c: CommandContext, words: readonly string[], o: RunOptions): Promise<number> {
  const body = oneOffBody(words, o);
  const dyno = await c.api.json<DynoView>('POST', `/apps/${encodeURIComponent(c.app)}/dynos`, body, API_CHANGE_TIMEOUT_MS);
  c.out.write(c.json ? `${JSON.stringify(dyno)}\n` : `Running ${body.command} on ${c.app}... ${dyno.state}, ${dyno.name}\nIts output: slipway logs -a ${c.app} --dyno ${dyno.name}\n`);
  return 0;
}

export interface DrainView {
  id: string;
  token: string;
  url: string;
  createdAt: string;
  stats: { queuedFrames: number; deliveredFrames: number; droppedFrames: number; rejectedFrames: number; lastError?: string };
}

export function renderDrains(drains: readonly DrainView[]): string {
  if (drains.length === 0) return 'No drains. Add one with slipway drains:add -a APP https://... or syslog+tls://...\n';
  return table(['URL', 'TOKEN', 'DELIVERED', 'DROPPED', 'QUEUED', 'LAST ERROR'], drains.map((d) => [
    d.url, d.token, String(d.stats.deliveredFrames), String(d.stats.droppedFrames + d.stats.rejectedFrames), String(d.stats.queuedFrames), d.stats.lastError,
  ]));
}

/** `drains`, `drains:add URL`, `drains:remove ID|TOKEN|URL`. */
export async function drainsCommand(c: CommandContext, sub: 'list' | 'add' | 'remove', arg: string | undefined): Promise<number> {
  const base = `/apps/${encodeURIComponent(c.app)}/drains`;
  if (sub !== 'list' && (arg === undefined || arg === '')) throw new SlipwayError('CONFIG_INVALID', `drains:${sub} needs ${sub === 'add' ? 'a URL' : 'the drain\'s id, token or URL'}`);
  if (sub === 'list') {
    const drains = await c.api.json<DrainView[]>('GET', base);
    c.out.write(c.json ? `${JSON.stringify(drains)}\n` : renderDrains(drains));
    return 0;
  }
  const d = sub === 'add'
    ? await c.api.json<DrainView>('POST', base, { url: arg })
    : await c.api.json<DrainView>('DELETE', `${base}/${encodeURIComponent(arg!)}`);
  c.out.write(c.json ? `${JSON.stringify(d)}\n` : `${sub === 'add' ? 'Successfully added drain' : 'Successfully removed drain'} ${d.url} (token ${d.token})\n`);
  return 0;
}
