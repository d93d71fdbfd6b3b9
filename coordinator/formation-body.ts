// The body of `PUT /apps/:app/formation/:type`, its schema and its resolution into a
// FormationRequest (size name -> limits, defaults filled in). Field schemas are reused from
// shared/protocol.ts so the API accepts exactly what start_dyno can carry.
import { createHash } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { SlipwayError } from '../shared/errors.js';
import { AppName, DynoSpec, ProcessType, SlugRef, StackName, type DynoSize } from '../shared/protocol.js';
import { resolveSize } from '../shared/sizes.js';

/** Upper bound on one process type's quantity: a guard against a typo starting a fleet
 * (Heroku's own default limit per process type is in the low hundreds). Dyno names allow up
 * to 6 digits, so raising it is a one-line change. */
export const MAX_QUANTITY = 1000;

export const FormationBody = Type.Object({
  quantity: Type.Integer({ minimum: 0, maximum: MAX_QUANTITY }),
  size: Type.String({ minLength: 1, maxLength: 32, description: 'A size name of the coordinator table: standard-1x, performance-m, ...' }),
  command: DynoSpec.properties.command,
  slug: SlugRef,
  env: Type.Optional(DynoSpec.properties.env),
  stack: Type.Optional(StackName),
  release: Type.Optional(Type.String({ maxLength: 64 })),
}, { additionalProperties: false });
export type FormationBody = Static<typeof FormationBody>;

export interface FormationRequest {
  app: string;
  type: string;
  quantity: number;
  size: DynoSize;
  command: string;
  /** `signature`: the slug's minisign signature, passed to the agents as is (they verify it). */
  slug: { url: string; sha256: string; signature?: string };
  env: Record<string, string>;
  stack: string;
  release?: string;
}

const checkBody = TypeCompiler.Compile(FormationBody);
const checkApp = TypeCompiler.Compile(AppName);
const checkType = TypeCompiler.Compile(ProcessType);

export interface FormationDefaults {
  sizes: Readonly<Record<string, DynoSize>>;
  defaultStack: string;
}

function checkAppName(app: string): void {
  if (!checkApp.Check(app)) throw new SlipwayError('PROTOCOL_SCHEMA_VIOLATION', `app name ${JSON.stringify(app)} is invalid (lowercase letters, digits, dashes; 2-30 characters)`);
}

/** A body's first schema error as the API's answer. */
function schemaViolation(what: string, first: { path: string; message: string } | undefined): SlipwayError {
  return new SlipwayError('PROTOCOL_SCHEMA_VIOLATION', `${what} ${first ? `${first.path || '/'}: ${first.message}` : 'is invalid'}`);
}

/** A size name of the coordinator's table, resolved (SIZE_UNKNOWN otherwise). */
function sizeNamed(name: string, defaults: FormationDefaults): DynoSize {
  const size = resolveSize(name, defaults.sizes);
  if (!size) throw new SlipwayError('SIZE_UNKNOWN', `unknown dyno size ${JSON.stringify(name)}; known sizes: ${Object.keys(defaults.sizes).join(', ')}`);
  return size;
}

/** Validates and resolves a formation request; throws SlipwayError with the code to answer. */
export function parseFormationRequest(app: string, type: string, body: unknown, defaults: FormationDefaults): FormationRequest {
  checkAppName(app);
  if (!checkType.Check(type)) throw new SlipwayError('PROTOCOL_SCHEMA_VIOLATION', `process type ${JSON.stringify(type)} is invalid`);
  if (!checkBody.Check(body)) throw schemaViolation('formation body', checkBody.Errors(body).First());
  const size = sizeNamed(body.size, defaults);
  const slug: FormationRequest['slug'] = { url: body.slug.url, sha256: body.slug.sha256 };
  if (body.slug.signature !== undefined) slug.signature = body.slug.signature;
  const request: FormationRequest = {
    app, type, quantity: body.quantity, size, command: body.command,
    slug, env: body.env ?? {}, stack: body.stack ?? defaults.defaultStack,
  };
  if (body.release !== undefined) request.release = body.release;
  return request;
}

/** Fingerprint of what every dyno of a formation runs. A dyno whose fingerprint differs is
 * replaced. The slug counts by its SHA-256, not its URL: a fresh presigned URL for the same
 * slug is not a new release. Its signature counts when there is one: a slug re-signed with a
 * new key replaces the dynos (a rolling restart), so that none is left whose agent restarts it
 * with the old key's signature once that key is dropped (key rotation, README "Signed slugs").
 * Env keys are sorted so their order does not matter. */
export function formationSpecKey(r: FormationRequest): string {
  const env = Object.keys(r.env).sort().map((k) => [k, r.env[k]]);
  // Unsigned formations keep the fingerprint they had before signatures existed.
  const signed = r.slug.signature === undefined ? [] : [r.slug.signature];
  const canonical = JSON.stringify([r.size, r.command, r.slug.sha256, env, r.stack, r.release ?? null, ...signed]);
  return createHash('sha256').update(canonical).digest('hex');
}

/** The body of `PATCH /apps/:app/formation` (Heroku's formation batch update): new quantities
 * and sizes for process types the app has. */
export const ScaleBody = Type.Object({
  updates: Type.Array(Type.Object({
    type: ProcessType,
    quantity: Type.Optional(FormationBody.properties.quantity),
    size: Type.Optional(FormationBody.properties.size),
  }, { additionalProperties: false }), { minItems: 1, maxItems: 50 }),
}, { additionalProperties: false });
export type ScaleBody = Static<typeof ScaleBody>;

export interface ScaleUpdate {
  type: string;
  quantity?: number;
  size?: DynoSize;
}

const checkScale = TypeCompiler.Compile(ScaleBody);

/** Validates a scale request (sizes resolved); throws SlipwayError with the code to answer. */
export function parseScaleRequest(app: string, body: unknown, defaults: FormationDefaults): ScaleUpdate[] {
  checkAppName(app);
  if (!checkScale.Check(body)) throw schemaViolation('scale body', checkScale.Errors(body).First());
  const seen = new Set<string>();
  return body.updates.map((u) => {
    if (seen.has(u.type)) throw new SlipwayError('PROTOCOL_SCHEMA_VIOLATION', `scale body names ${u.type} twice`);
    seen.add(u.type);
    if (u.quantity === undefined && u.size === undefined) throw new SlipwayError('PROTOCOL_SCHEMA_VIOLATION', `scale body: ${u.type} needs a quantity or a size`);
    const update: ScaleUpdate = { type: u.type };
    if (u.quantity !== undefined) update.quantity = u.quantity;
    if (u.size !== undefined) update.size = sizeNamed(u.size, defaults);
    return update;
  });
}

/** The body of `POST /apps/:app/dynos` (Heroku's dyno create): a one-off dyno of the app's
 * release. Detached (attach false or absent): its output goes to the app's logs. Attached: its
 * stdio goes through a rendezvous the answer names (shared/attach.ts), with a terminal when
 * `tty`, of `cols` x `rows`. */
export const OneOffBody = Type.Object({
  command: DynoSpec.properties.command,
  size: Type.Optional(FormationBody.properties.size),
  env: Type.Optional(DynoSpec.properties.env),
  attach: Type.Optional(Type.Boolean({ description: 'Stream stdin, stdout and stderr through a rendezvous (`slipway run`); false or absent: detached (`run --detach`).' })),
  tty: Type.Optional(Type.Boolean({ description: 'With attach: a terminal (`slipway run -t`).' })),
  cols: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000 })),
  rows: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000 })),
}, { additionalProperties: false });

const checkOneOff = TypeCompiler.Compile(OneOffBody);

export interface OneOffRequest {
  command: string;
  size?: DynoSize;
  env?: Record<string, string>;
  attach?: { tty: boolean; cols?: number; rows?: number };
}

export function parseOneOffRequest(app: string, body: unknown, defaults: FormationDefaults): OneOffRequest {
  checkAppName(app);
  if (!checkOneOff.Check(body)) throw schemaViolation('one-off body', checkOneOff.Errors(body).First());
  const out: OneOffRequest = { command: body.command };
  if (body.env !== undefined) out.env = body.env;
  if (body.size !== undefined) out.size = sizeNamed(body.size, defaults);
  if (body.attach === true) {
    out.attach = { tty: body.tty === true };
    if (body.cols !== undefined) out.attach.cols = body.cols;
    if (body.rows !== undefined) out.attach.rows = body.rows;
  } else if (body.tty !== undefined || body.cols !== undefined || body.rows !== undefined) {
    throw new SlipwayError('PROTOCOL_SCHEMA_VIOLATION', 'one-off body: tty, cols and rows need attach: true (a detached dyno has no terminal)');
  }
  return out;
}
