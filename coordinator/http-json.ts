// JSON over node's http module for the API and the router: bounded body reading, JSON
// answers, and the `{error:{code,message}}` shape. The status of an error answer is always its
// code's (shared/errors.ts, `httpStatus`): sendError takes no status, so no caller can pair a
// code with another one; sendJson is for 2xx answers only.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { httpStatusOf, isErrorCode, SlipwayError, type ErrorCode } from '../shared/errors.js';
import { MAX_FRAME_BYTES, type WireError } from '../shared/protocol.js';

/** API bodies are bounded like agent frames: a formation carries at most the env of a dyno. */
export const MAX_BODY_BYTES = MAX_FRAME_BYTES;

/** Statuses of the answers that are not errors. */
export type SuccessStatus = 200 | 201 | 202;

export function sendJson(res: ServerResponse, status: SuccessStatus, body: unknown, headers: Record<string, string> = {}): void {
  writeJson(res, status, body, headers);
}

/** Answers `{error: {code, message, ...extra}}` with the code's status. */
export function sendError(res: ServerResponse, code: ErrorCode, message: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}): void {
  writeJson(res, httpStatusOf(code), { error: { code, message, ...extra } }, headers);
}

export function sendSlipwayError(res: ServerResponse, err: SlipwayError): void {
  sendError(res, err.code, err.message);
}

/** Relays an agent's error as it came. A code this coordinator does not know (a newer
 * agent's) has no status here: 502, the agent answered something it cannot interpret. */
export function sendWireError(res: ServerResponse, error: WireError): void {
  writeJson(res, isErrorCode(error.code) ? httpStatusOf(error.code) : 502, { error });
}

function writeJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Reads and parses a JSON body of at most MAX_BODY_BYTES. Throws SlipwayError. */
export async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw new SlipwayError('HTTP_BODY_TOO_LARGE', `body of ${declared} bytes exceeds ${MAX_BODY_BYTES}`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new SlipwayError('HTTP_BODY_TOO_LARGE', `body exceeds ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new SlipwayError('PROTOCOL_INVALID_JSON', 'the request body is not valid JSON');
  }
}
