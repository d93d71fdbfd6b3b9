// Text for a terminal: aligned columns and short human numbers, the default output of the
// on-call commands and of the developer CLI (`--json` prints the endpoint's own JSON
// instead). Pure functions: unit-tested.

/** Columns left-aligned, two spaces apart, the header row first; the last column is not padded
 * (no trailing blanks). A missing cell is `-`. */
export function table(header: readonly string[], rows: readonly (readonly (string | undefined)[])[]): string {
  const cells = [header, ...rows].map((r) => header.map((_, i) => r[i] ?? '-'));
  const widths = header.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd() + '\n').join('');
}

/** `label  value` lines, labels padded to one width (status's key/value block). */
export function fields(pairs: readonly (readonly [string, string])[]): string {
  const width = Math.max(0, ...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${k.padEnd(width)}  ${v}`.trimEnd() + '\n').join('');
}

/** Bytes in binary units with at most one decimal: `512 B`, `1.5 KiB`, `2 GiB`. */
export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  const text = u === 0 ? String(Math.round(v)) : (Math.round(v * 10) / 10).toString();
  return `${text} ${units[u]}`;
}

/** A duration as its two largest units: `45s`, `3m12s`, `2h05m`, `4d03h`. */
export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}

/** How long ago an ISO time was, from `now`; `-` for none or an unreadable one. */
export function age(iso: string | null | undefined, now: number): string {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isNaN(t) ? '-' : duration(now - t);
}

/** `1 slug`, `2 slugs`. */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** A value of unknown shape (an exit record's field) as one short cell. */
export function cell(v: unknown): string {
  if (v === undefined || v === null || v === '') return '-';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}
