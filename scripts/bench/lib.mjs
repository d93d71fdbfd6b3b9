// Small helpers the benchmark drivers share: JSON over HTTP to the coordinator's API, sleeping,
// bounded polling, a monotonic clock and medians, and a process's CPU time and RSS from /proc.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Milliseconds on the monotonic clock. */
export const now = () => Number(process.hrtime.bigint()) / 1e6;

/** The upper median (the middle sample of an odd count, the higher middle one of an even count). */
export const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

/** The API token of the benchmarks' coordinators (SLIPWAY_API_TOKEN): every API request but
 * GET /healthz and GET /v1/leader needs one. Not the agents' token. */
export const API_TOKEN = 'bench-api-token-0123456789abcdef';

/** A request to the coordinator's API, with API_TOKEN (a build from before the API took tokens
 * ignores it). */
export function http(method, url, body) {
  return new Promise((res, rej) => {
    const req = request(url, { method, headers: { 'content-type': 'application/json', authorization: `Bearer ${API_TOKEN}` }, timeout: 30_000 }, (r) => {
      let d = ''; r.on('data', (c) => { d += c; }); r.on('end', () => res({ status: r.statusCode, body: d }));
    });
    req.on('timeout', () => req.destroy(new Error(`timeout ${url}`))); req.on('error', rej);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

export const getJson = async (url) => JSON.parse((await http('GET', url)).body);

/** Polls `fn` every `everyMs` until it returns something truthy; throws after `timeoutMs`. */
export async function until(what, fn, timeoutMs, everyMs = 500) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) { const v = await fn().catch(() => undefined); if (v) return v; await sleep(everyMs); }
  throw new Error(`timed out waiting for ${what}`);
}

const TICK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/** CPU seconds (user + system) and RSS in KB of a process, from /proc. */
export function procUsage(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
  return { cpu: (Number(f[11]) + Number(f[12])) / TICK, rssKb };
}
