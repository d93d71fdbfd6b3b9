// `GET /v1/dynos/:id/logs?follow=1`: a dyno's log as it is written, for `slipway-agent logs -f`.
// The answer is NDJSON, one object a line: `{"line": "..."}` for each log line (the dyno's last
// `lines` first, then each new one as the agent keeps it), `{"dropped": N}` when N lines were
// skipped because the reader was slow, and `{"end": "..."}` just before the agent ends the
// stream because the dyno is gone. It ends too when the client leaves or the agent stops.
//
// A slow reader must not grow the agent: a line is written only while the response holds less
// than FOLLOW_MAX_BUFFERED_BYTES not yet taken by the kernel; past that, lines are counted and
// dropped (the shipper's own queue to the coordinator is not touched), and the count goes out
// before the next line that fits. The connection is one of DIAGNOSTICS_MAX_CONNECTIONS.
import type { ServerResponse } from 'node:http';
import type { AgentView } from './server.js';

/** Bytes a follow response may hold in the agent's memory for a reader that does not keep up:
 * 64 KiB is a few hundred lines of a chatty dyno, a second or two of a terminal's scrollback
 * rate; with DIAGNOSTICS_MAX_CONNECTIONS followers at most 2 MiB in all. */
export const FOLLOW_MAX_BUFFERED_BYTES = 64 * 1024;
/** How often a follow looks whether its dyno is still on the host (one list lookup). */
export const FOLLOW_CHECK_MS = 1_000;

/** Streams the dyno's log into `res`; false when the dyno is unknown (nothing was written). */
export async function followLog(view: AgentView, id: string, lines: number, res: ServerResponse): Promise<boolean> {
  // Subscribed before the recent lines are read: what is kept meanwhile waits (bounded like
  // the rest) and is written after them, without the lines the recent ones already hold.
  let early: string[] | undefined = [];
  let dropped = 0;
  const send = (o: object) => res.write(JSON.stringify(o) + '\n');
  const write = (line: string) => {
    if (early) {
      if (early.length < lines) early.push(line);
      else dropped++;
      return;
    }
    if (res.writableLength > FOLLOW_MAX_BUFFERED_BYTES) {
      dropped++;
      return;
    }
    if (dropped > 0) send({ dropped });
    dropped = 0;
    send({ line });
  };
  const unsubscribe = view.followLog?.(id, write);
  if (!unsubscribe) return false;
  const watch: { timer?: NodeJS.Timeout } = {};
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    unsubscribe();
    clearInterval(watch.timer);
  };
  res.once('close', stop);
  let recent: string[];
  try {
    recent = (await view.dynoLog(id, lines)) ?? [];
  } catch (err) {
    stop();
    throw err;
  }
  if (res.destroyed) return true;
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  // Sent now, not with the first line: a quiet dyno's follow must answer within the client's bound.
  res.flushHeaders();
  for (const line of recent) send({ line });
  const seen = new Set(recent);
  const waiting = early;
  early = undefined;
  for (const line of waiting) if (!seen.has(line)) write(line);
  // The count of lines dropped while the reader was behind goes out as soon as it caught up.
  res.on('drain', () => {
    if (dropped > 0 && res.writableLength <= FOLLOW_MAX_BUFFERED_BYTES) {
      send({ dropped });
      dropped = 0;
    }
  });
  const timer = setInterval(() => {
    if (view.dynos().some((d) => d.id === id)) return;
    stop();
    if (dropped > 0) send({ dropped });
    send({ end: 'the dyno is no longer on this host' });
    res.end();
  }, FOLLOW_CHECK_MS);
  timer.unref();
  watch.timer = timer;
  return true;
}
