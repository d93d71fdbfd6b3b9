// A pino logger that keeps every record, parsed, so that a test can count what was logged
// (one line per failure streak, not one per event).
import { createRootLogger, type Logger } from '../../shared/log.js';

export interface LogRecord {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** pino's numeric levels. */
export const LEVEL = { debug: 20, info: 30, warn: 40, error: 50 } as const;

export function captureLog(): { log: Logger; records: () => LogRecord[]; at: (level: number) => LogRecord[] } {
  const chunks: string[] = [];
  const log = createRootLogger({ level: 'debug', destination: { write: (s: string) => void chunks.push(s) } });
  const records = () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as LogRecord);
  return { log, records, at: (level) => records().filter((r) => r.level === level) };
}
