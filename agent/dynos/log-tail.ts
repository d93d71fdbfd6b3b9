// Reads the last lines of a dyno's log as conmon writes it (k8s-file format:
// `TIMESTAMP STREAM F|P text`), rendered Heroku style: `TIMESTAMP app[web.1]: text`.
import { open } from 'node:fs/promises';

/** The tail read is bounded: 1,500 lines of up to ~10 KB would be 15 MB; 1 MiB is plenty. */
export const TAIL_BYTES = 1024 * 1024;

export function renderK8sLine(line: string, dynoName: string): string | undefined {
  const m = /^(\S+) (stdout|stderr) [FP] ?(.*)$/.exec(line);
  if (!m) return undefined;
  return `${m[1]} app[${dynoName}]: ${m[3]}`;
}

export async function tailLog(file: string, dynoName: string, lines: number): Promise<string[]> {
  let fh;
  try {
    fh = await open(file, 'r');
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
    const out: string[] = [];
    for (const l of all) {
      const r = renderK8sLine(l, dynoName);
      if (r !== undefined) out.push(r);
    }
    return out.slice(-lines);
  } finally {
    await fh.close();
  }
}
