// Who may use the coordinator's API: a request carries `Authorization: Bearer TOKEN` with one
// of the configured API tokens (`--api-token-file`, else env SLIPWAY_API_TOKEN). The API
// scales formations, reads config-free views and app logs, and (issue 16) attaches to one-off
// dynos, so nothing on it is open but the two health checks a load balancer makes without a
// secret: GET /healthz and GET /v1/leader.
//
// These are not the agents' token (config.ts `token`): a host holds that one, and a host is
// where hostile code runs; a host's secret must not scale another tenant's app. A file may
// hold several tokens, one per line (`#` comments and blank lines skipped), so that a token is
// rotated without downtime: add the new one, restart or fail over, hand it out, drop the old.
//
// Tokens are compared as SHA-256 digests with timingSafeEqual, against every configured
// token, so neither the time to refuse nor the one to accept tells how much of a guess was
// right. A token is at least 16 characters: a short one is a typo or a placeholder.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { SlipwayError } from '../shared/errors.js';

export const MIN_API_TOKEN_LENGTH = 16;

/** The paths anyone may GET: a load balancer's health checks (start.ts, http-api.ts). */
const OPEN_PATHS = new Set(['/healthz', '/v1/leader']);

export class ApiTokens {
  private readonly digests: Buffer[];

  constructor(tokens: readonly string[]) {
    if (tokens.length === 0) throw new SlipwayError('CONFIG_INVALID', 'the API needs at least one token');
    for (const t of tokens) checkToken(t, 'an API token');
    this.digests = tokens.map(digest);
  }

  /** Whether the request may use the API: an open path, or a known bearer token. */
  allows(req: IncomingMessage, path: string): boolean {
    if (OPEN_PATHS.has(path) && (req.method === 'GET' || req.method === 'HEAD')) return true;
    const presented = bearerToken(req.headers.authorization);
    if (presented === undefined) return false;
    const d = digest(presented);
    let ok = false;
    // Every digest is compared, the match or not: the time does not depend on which one matched.
    for (const known of this.digests) ok = timingSafeEqual(known, d) || ok;
    return ok;
  }
}

/** The token of an `Authorization: Bearer TOKEN` header. */
export function bearerToken(header: string | undefined): string | undefined {
  const m = /^Bearer +(\S+) *$/i.exec(header ?? '');
  return m?.[1];
}

/** The tokens of an API token file's text: one per line, `#` comments and blank lines skipped. */
export function parseApiTokens(text: string, source: string): string[] {
  const tokens = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  if (tokens.length === 0) throw new SlipwayError('CONFIG_INVALID', `${source} holds no API token`);
  for (const t of tokens) checkToken(t, source);
  return tokens;
}

function checkToken(token: string, source: string): void {
  if (token.length < MIN_API_TOKEN_LENGTH || /\s/.test(token)) {
    throw new SlipwayError('CONFIG_INVALID', `${source}: an API token is at least ${MIN_API_TOKEN_LENGTH} characters with no whitespace (one per line)`);
  }
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}
