// The body of `POST /agents/:id/drain`: `{stopDynos?: boolean, graceMs?: number}` (empty
// body: drain without stopping anything).
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Type } from '@sinclair/typebox';
import { SlipwayError } from '../shared/errors.js';
import { Drain } from '../shared/protocol.js';

const DrainBody = Type.Object({ stopDynos: Drain.properties.stopDynos, graceMs: Drain.properties.graceMs }, { additionalProperties: false });
const check = TypeCompiler.Compile(DrainBody);

export function parseDrainBody(body: unknown): { type: 'drain'; stopDynos?: boolean; graceMs?: number } {
  const b = body ?? {};
  if (!check.Check(b)) {
    const first = check.Errors(b).First();
    throw new SlipwayError('PROTOCOL_SCHEMA_VIOLATION', `drain body ${first ? `${first.path || '/'}: ${first.message}` : 'is invalid'}`);
  }
  return { type: 'drain', ...b };
}
