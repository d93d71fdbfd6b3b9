// `slipway-agent logs DYNO [-f]`: a dyno's last lines (`GET /v1/dynos/:id/logs?lines=N`), and
// with -f the lines as the agent keeps them (`?follow=1`, NDJSON: agent/diagnostics/log-follow.ts).
// Log lines go to stdout as they are (Heroku's `TIME app[web.1]: text`); what the CLI itself
// says (lines dropped because this terminal fell behind, the dyno gone) goes to stderr.
import { SlipwayError } from '../../../shared/errors.js';
import type { DiagnosticsClient } from './client.js';

export interface LogsOutput {
  out: (text: string) => void;
  err: (text: string) => void;
}

/** One NDJSON message of a follow: what to print, and whether the agent ended the stream. */
export function followMessage(raw: string, json: boolean): { out?: string; err?: string; end?: boolean } {
  let m: { line?: unknown; dropped?: unknown; end?: unknown };
  try {
    m = JSON.parse(raw) as typeof m;
  } catch {
    return { err: `slipway-agent: the agent sent a line that is not JSON (${raw.length} bytes); skipped\n` };
  }
  if (json) return { out: raw + '\n', ...(typeof m.end === 'string' ? { end: true } : {}) };
  if (typeof m.line === 'string') return { out: m.line + '\n' };
  if (typeof m.dropped === 'number') return { err: `slipway-agent: ${m.dropped} lines dropped: this reader fell behind the dyno\n` };
  if (typeof m.end === 'string') return { err: `slipway-agent: ${m.end}\n`, end: true };
  return {};
}

/** Follows until the agent ends the stream (resolves) or the connection breaks (throws
 * DIAGNOSTICS_UNREACHABLE: the agent stopped or restarted). Ctrl-C ends the process. */
export async function followLogs(client: DiagnosticsClient, id: string, lines: number, json: boolean, io: LogsOutput): Promise<void> {
  const res = await client.stream(`/v1/dynos/${encodeURIComponent(id)}/logs?follow=1&lines=${lines}`);
  let buf = '';
  let ended = false;
  res.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    res.on('data', (chunk: string) => {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const raw = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (raw === '') continue;
        const m = followMessage(raw, json);
        if (m.out) io.out(m.out);
        if (m.err) io.err(m.err);
        if (m.end) ended = true;
      }
    });
    const closed = () => (ended ? resolve() : reject(new SlipwayError('DIAGNOSTICS_UNREACHABLE', 'the agent closed the log stream (it stopped or restarted)')));
    res.on('end', closed);
    res.on('error', closed);
    res.on('close', closed);
  });
}
