// One pino root logger per process; components take a child (`{component: 'slugs'}`).
// Field names are stable: dynoId, dyno (web.1), app, commandId, seq, sha256, err.
// Secrets never reach the output: the redact paths below censor config vars, tokens and
// URLs that may carry presigned signatures; code that logs a slug URL logs `redactUrl(url)`.
import { pino, type Logger } from 'pino';

export type { Logger };

export const REDACT_PATHS = [
  'env', '*.env', 'token', '*.token', 'authorization', '*.authorization', 'headers.authorization',
  'slug.url', '*.slug.url', 'dyno.env', 'spec.env', 'config.token',
  'attach.secret', '*.attach.secret', 'dyno.attach.secret', 'spec.attach.secret', 'secret', '*.secret',
];

export function createRootLogger(options: { level?: string; name?: string; destination?: pino.DestinationStream } = {}): Logger {
  return pino(
    {
      name: options.name ?? 'slipway',
      level: options.level ?? process.env.SLIPWAY_LOG_LEVEL ?? 'info',
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      base: { pid: process.pid },
    },
    options.destination,
  );
}

/** A URL with its query string and credentials removed, safe to log. */
export function redactUrl(raw: string): string {
  try {
    const u = new URL(raw);
    const hidden = u.search ? '?[redacted]' : '';
    u.username = '';
    u.password = '';
    u.search = '';
    return u.toString() + hidden;
  } catch {
    return '[unparseable url]';
  }
}
