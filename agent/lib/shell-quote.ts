/** One POSIX shell word holding exactly `s`: single quotes, each quote inside written as '\''. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
