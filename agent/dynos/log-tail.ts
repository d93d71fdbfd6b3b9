// Reads a dyno's log as its runtime's monitor writes it, and renders it Heroku style:
// `TIMESTAMP app[web.1]: text`. Two formats (driver.ts LogSource):
// - k8s-file (conmon, for runc and LXC): `TIMESTAMP stdout|stderr F|P text`, P marking a
//   partial line continued by the next record;
// - docker-json (Docker's json-file driver): `{"log":"text\n","stream":"stdout","time":"..."}`,
//   where a record without a trailing newline is a partial line.
import { open } from 'node:fs/promises';
import type { LogSource } from '../runtime/driver.js';

/** The tail read is bounded: 1,500 lines of up to ~10 KB would be 15 MB; 1 MiB is plenty. */
export const TAIL_BYTES = 1024 * 1024;

export interface LogRecord {
  time: string;
  stream: 'stdout' | 'stderr';
  text: string;
  /** The line goes on in the next record. */
  partial: boolean;
}

export function parseLogRecord(line: string, format: LogSource['format']): LogRecord | undefined {
  if (format === 'k8s-file') {
    const m = /^(\S+) (stdout|stderr) ([FP]) ?(.*)$/.exec(line);
    return m ? { time: m[1]!, stream: m[2] as LogRecord['stream'], partial: m[3] === 'P', text: m[4]! } : undefined;
  }
  let j: { log?: unknown; stream?: unknown; time?: unknown };
  try {
    j = JSON.parse(line) as typeof j;
  } catch {
    return undefined;
  }
  if (typeof j.log !== 'string' || (j.stream !== 'stdout' && j.stream !== 'stderr') || typeof j.time !== 'string') return undefined;
  const partial = !j.log.endsWith('\n');
  return { time: j.time, stream: j.stream, partial, text: partial ? j.log : j.log.slice(0, -1) };
}

/** Joins partial records into whole lines; a line's time is its first record's. */
export function joinRecords(records: LogRecord[]): LogRecord[] {
  const out: LogRecord[] = [];
  let open: LogRecord | undefined;
  for (const r of records) {
    if (open && open.stream === r.stream) {
      open = { ...open, text: open.text + r.text, partial: r.partial };
    } else {
      if (open) out.push({ ...open, partial: false });
      open = r;
    }
    if (!open.partial) {
      out.push(open);
      open = undefined;
    }
  }
  if (open) out.push(open);
  return out;
}

export function renderLine(r: LogRecord, dynoName: string): string {
  return `${r.time} app[${dynoName}]: ${r.text}`;
}

/** Kept for callers that hold one k8s-file line. */
export function renderK8sLine(line: string, dynoName: string): string | undefined {
  const r = parseLogRecord(line, 'k8s-file');
  return r ? renderLine(r, dynoName) : undefined;
}

export async function tailLog(source: LogSource | string, dynoName: string, lines: number): Promise<string[]> {
  const { path, format } = typeof source === 'string' ? { path: source, format: 'k8s-file' as const } : source;
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    return [];
  }
  try {
    const { size } = await fh.stat();
    const start = Math.max(0, size - TAIL_BYTES);
    const buf = Buffer.alloc(size - start);
    await fh.read(buf, 0, buf.length, start);
    const all = buf.toString('utf8').split('\n');
    if (start > 0) all.shift(); // partial first line
    const records: LogRecord[] = [];
    for (const l of all) {
      const r = parseLogRecord(l, format);
      if (r) records.push(r);
    }
    return joinRecords(records).map((r) => renderLine(r, dynoName)).slice(-lines);
  } finally {
    await fh.close();
  }
}
