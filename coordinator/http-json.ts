// JSON over node's http module for the API and the router: bounded body reading, JSON
// answers, and the `{error:{code,message}}` shape with an HTTP status per error code.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SlipwayError, type ErrorCode } from '../shared/errors.js';
import { MAX_FRAME_BYTES } from '../shared/protocol.js';

/** API bodies are bounded like agent frames: a formation carries at most the env of a dyno. */
export const MAX_BODY_BYTES = MAX_FRAME_BYTES;

/** HTTP status of each code the API answers with. Codes an agent returned and that are not
 * listed (STACK_NOT_FOUND, DYNO_START_FAILED, ...) are the agent's refusal: 502. */
const STATUS_BY_CODE: Partial<Record<ErrorCode, number>> = {
  PROTOCOL_INVALID_JSON: 400,
  PROTOCOL_SCHEMA_VIOLATION: 422,
  CONFIG_INVALID: 422,
  PROTOCOL_UNKNOWN_TYPE: 404,
  DYNO_NOT_FOUND: 404,
  AUTH_INVALID_TOKEN: 401,
  INSUFFICIENT_CAPACITY: 503,
  HOST_DRAINING: 503,
  PROTOCOL_NOT_READY: 503,
  RUNTIME_TIMEOUT: 504,
  SIZE_UNKNOWN: 422,
  API_NOT_FOUND: 404,
  APP_NOT_FOUND: 404,
  ROUTER_NO_DYNOS: 503,
  ROUTER_UPSTREAM_FAILED: 502,
  ROUTER_UPSTREAM_TIMEOUT: 504,
  AGENT_UNREACHABLE: 503,
  COMMAND_TIMEOUT: 504,
  INTERNAL: 500,
};

export function statusForCode(code: ErrorCode): number {
  return STATUS_BY_CODE[code] ?? 502;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sendError(res: ServerResponse, status: number, code: ErrorCode, message: string, extra: Record<string, unknown> = {}): void {
  sendJson(res, status, { error: { code, message, ...extra } });
}

export function sendSlipwayError(res: ServerResponse, err: SlipwayError): void {
  sendError(res, statusForCode(err.code), err.code, err.message);
}

/** Reads and parses a JSON body of at most MAX_BODY_BYTES. Throws SlipwayError. */
export async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw new SlipwayError('PROTOCOL_SCHEMA_VIOLATION', `body of ${declared} bytes exceeds ${MAX_BODY_BYTES}`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new SlipwayError('PROTOCOL_SCHEMA_VIOLATION', `body exceeds ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new SlipwayError('PROTOCOL_INVALID_JSON', 'the request body is not valid JSON');
  }
}
