// Parsers of what HAProxy 2.6 answers on its runtime API and master CLI: `show servers state`
// (format version 1, management.txt section 9.3), the CSV of `show stat`, `show map <file>`,
// `show backend` and the master's `show proc`. Pure; the router's reconcile reads HAProxy only
// through them.

/** srv_admin_state bits (HAProxy's SRV_ADMF_*): forced, inherited, config, resolver and
 * hostname maintenance; forced and inherited drain. */
const ADMIN_MAINT = 0x01 | 0x02 | 0x04 | 0x20 | 0x40;
const ADMIN_DRAIN = 0x08 | 0x10;

export interface ServerState {
  backend: string;
  name: string;
  addr: string;
  port: number;
  /** srv_op_state: 0 stopped, 1 starting, 2 running, 3 stopping. */
  opState: number;
  adminState: number;
}

export interface ServerSessions {
  /** Sessions on the server now (scur) and queued for it (qcur). */
  current: number;
  queued: number;
}

export interface ProcTable {
  masterPid: number;
  reloads: number;
  failedReloads: number;
  /** The current workers (normally one), then those still finishing after a reload. */
  workers: number[];
  oldWorkers: number[];
}

export function inMaintenance(s: ServerState): boolean {
  return (s.adminState & ADMIN_MAINT) !== 0;
}

export function draining(s: ServerState): boolean {
  return (s.adminState & ADMIN_DRAIN) !== 0;
}

/** `show servers state [backend]`: a version line, a `#` header, then one line a server. */
export function parseServersState(text: string): ServerState[] {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  if (lines.length === 0) return [];
  if (lines[0] !== '1') throw new Error(`unknown servers state format: ${lines[0]}`);
  const header = lines.find((l) => l.startsWith('#'))?.slice(1).trim().split(/\s+/) ?? [];
  const col = (name: string): number => {
    const at = header.indexOf(name);
    if (at < 0) throw new Error(`servers state lacks ${name}`);
    return at;
  };
  const [be, name, addr, op, admin, port] = ['be_name', 'srv_name', 'srv_addr', 'srv_op_state', 'srv_admin_state', 'srv_port'].map(col) as [number, number, number, number, number, number];
  return lines.slice(1).filter((l) => !l.startsWith('#')).map((line) => {
    const f = line.split(/\s+/);
    return {
      backend: f[be] ?? '', name: f[name] ?? '', addr: f[addr] ?? '', port: Number(f[port]),
      opState: Number(f[op]), adminState: Number(f[admin]),
    };
  });
}

/** Server rows of `show stat` (CSV, `# pxname,svname,...` header): sessions by `backend/server`. */
export function parseStatSessions(text: string): Map<string, ServerSessions> {
  const out = new Map<string, ServerSessions>();
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const header = lines[0]?.replace(/^#\s*/, '').split(',') ?? [];
  const [px, sv, scur, qcur] = ['pxname', 'svname', 'scur', 'qcur'].map((n) => header.indexOf(n));
  if ([px, sv, scur, qcur].some((i) => i === undefined || i < 0)) throw new Error('show stat lacks pxname, svname, scur or qcur');
  for (const line of lines.slice(1)) {
    const f = line.split(',');
    const server = f[sv!] ?? '';
    if (server === 'FRONTEND' || server === 'BACKEND') continue;
    out.set(`${f[px!]}/${server}`, { current: Number(f[scur!] || 0), queued: Number(f[qcur!] || 0) });
  }
  return out;
}

/** `show map <file>`: `<ref> <key> <value>` lines. A key may appear more than once (`add map`
 * appends), so every value is kept. */
export function parseMap(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const [, key, value] = line.trim().split(/\s+/);
    if (key === undefined || value === undefined) continue;
    out.set(key, [...(out.get(key) ?? []), value]);
  }
  return out;
}

/** `show backend`: a `# name` header, then one backend a line. */
export function parseBackends(text: string): string[] {
  return text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
}

/** The master CLI's `show proc`. */
export function parseProc(text: string): ProcTable {
  const table: ProcTable = { masterPid: 0, reloads: 0, failedReloads: 0, workers: [], oldWorkers: [] };
  let section: 'workers' | 'old' | 'other' = 'other';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '# workers') section = 'workers';
    else if (line === '# old workers') section = 'old';
    else if (line.startsWith('#')) section = line.startsWith('#<PID>') ? section : 'other';
    else {
      const master = /^(\d+)\s+master\s+(\d+)\s+\[failed:\s*(\d+)\]/.exec(line);
      if (master) {
        table.masterPid = Number(master[1]);
        table.reloads = Number(master[2]);
        table.failedReloads = Number(master[3]);
        continue;
      }
      const worker = /^(\d+)\s+worker\s/.exec(line);
      if (worker && section === 'workers') table.workers.push(Number(worker[1]));
      else if (worker && section === 'old') table.oldWorkers.push(Number(worker[1]));
    }
  }
  return table;
}
