// Checks every OCI runtime config (config.json) the runc driver writes against the OCI
// runtime-spec JSON Schema, as DESIGN.md's security rules require. A config that fails is a
// slipway bug, so it is refused (OCI_CONFIG_INVALID) before runc ever reads it.
//
// The schema is runtime-spec v1.0.2's (vendor/oci-runtime-spec, see its README): our configs
// declare ociVersion "1.0.2", and runc 1.1.5 is built against specs-go "1.0.2-dev" (its own
// `runc spec` output validates here; of v1.0.2's fields it refuses only seccomp `flags`).
// The schema is JSON Schema draft-04, hence ajv-draft-04. Its files carry no `id`
// (runtime-spec dropped them, #945) and refer to each other by file name
// ("defs.json#/definitions/uint32"), so each is registered under its own file name and the
// relative refs resolve among them, with no network.
//
// Note what the schema does not do: no object in it sets additionalProperties: false, so a
// property v1.0.2 does not define (errnoRet, defaultErrnoRet, a misspelt key) passes unchecked.
// It catches wrong types, missing required properties and values outside its enums.
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv-draft-04';
import { SlipwayError } from '../../../shared/errors.js';
import { readVendorJson } from '../../lib/vendor.js';

/** The schema's entry point and every file it reaches through $ref (v1.0.2's schema/ has no
 * others that config-schema.json uses; state-schema.json describes `runc state`, not configs). */
const ENTRY = 'config-schema.json';
const SCHEMA_FILES = [
  ENTRY,
  'defs.json',
  'config-linux.json',
  'defs-linux.json',
  'config-solaris.json',
  'config-windows.json',
  'defs-windows.json',
  'config-vm.json',
  'defs-vm.json',
] as const;

/** How many failures the error message spells out; a broken builder can produce dozens. */
const REPORTED_FAILURES = 3;
/** Enums longer than this (seccomp architectures) are summarised, not listed. */
const LISTED_ENUM_VALUES = 8;

// Compiled on first use and kept for the life of the process. Compiling (reading the nine
// files, checking them against the draft-04 meta-schema, generating code) took 90-250 ms;
// after that one validation of a dyno's config took 1.5-4 µs, with or without the seccomp
// section (measured 2026-11-22 on the build machine: 2 cores, Node 20, mean of 20,000 runs
// after a warm-up, several processes). So the driver can call this before every config.json
// it writes; only the first dyno after an agent start pays for the compile. The cached
// function is pure and never reconfigured, which is why a module-level cache is acceptable.
let validator: ValidateFunction | undefined;

function compile(): ValidateFunction {
  // ajv-draft-04 is CommonJS; under NodeNext its class is the default export's `default`.
  const ajv = new Ajv.default({
    allErrors: true,
    // The platform files keep their schema under a plain key ("config-linux.json#/linux"),
    // which strict mode takes for an unknown keyword; draft-04 ignores such keys, so that
    // check is off. strictTypes and strictTuples would only log advice about the schema's
    // style to the console. strictNumbers stays on: NaN or Infinity (which JSON.stringify
    // would write as null) is not a number here.
    strictSchema: false,
    strictTypes: false,
    strictTuples: false,
    strictNumbers: true,
  });
  for (const file of SCHEMA_FILES) ajv.addSchema(readVendorJson<object>('oci-runtime-spec', file), file);
  const validate = ajv.getSchema(ENTRY);
  if (!validate) throw new Error(`${ENTRY} was registered but ajv does not know it`);
  return validate;
}

/**
 * Throws SlipwayError('OCI_CONFIG_INVALID') naming the first failing JSON paths when `config`
 * does not match the runtime-spec v1.0.2 config schema; returns quietly when it does.
 */
export function validateOciConfig(config: unknown): void {
  validator ??= compile();
  if (validator(config)) return;
  const failures = describe(validator.errors ?? []);
  const shown = failures.slice(0, REPORTED_FAILURES).join('; ');
  const more = failures.length > REPORTED_FAILURES ? ` (and ${failures.length - REPORTED_FAILURES} more)` : '';
  throw new SlipwayError('OCI_CONFIG_INVALID', `OCI config does not match the runtime-spec v1.0.2 schema: ${shown}${more}`);
}

/** One line per failing place, in ajv's order. An anyOf that failed because its branch did
 * (a namespace entry) is left out when that branch's own error names the place. */
function describe(errors: ErrorObject[]): string[] {
  const lines: string[] = [];
  for (const e of errors) {
    const combinator = e.keyword === 'anyOf' || e.keyword === 'oneOf';
    const beneath = (o: ErrorObject): boolean => o.instancePath === e.instancePath || o.instancePath.startsWith(`${e.instancePath}/`);
    if (combinator && errors.some((o) => o !== e && beneath(o))) continue;
    const line = `${jsonPath(e)} ${explain(e)}`;
    if (!lines.includes(line)) lines.push(line);
  }
  return lines;
}

/** `linux.namespaces[4].type` from ajv's JSON pointer; a missing property is named itself. */
function jsonPath(e: ErrorObject): string {
  const segments = e.instancePath.split('/').slice(1).map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'));
  if (e.keyword === 'required') segments.push(String(e.params.missingProperty));
  let path = '';
  for (const s of segments) path += /^\d+$/.test(s) ? `[${s}]` : path === '' ? s : `.${s}`;
  return path === '' ? '(the config itself)' : path;
}

function explain(e: ErrorObject): string {
  if (e.keyword === 'required') return 'is required';
  if (e.keyword === 'enum') {
    const allowed = e.params.allowedValues as unknown[];
    return allowed.length <= LISTED_ENUM_VALUES
      ? `must be one of ${allowed.map((v) => JSON.stringify(v)).join(', ')}`
      : `must be one of the ${allowed.length} values the schema lists`;
  }
  return e.message ?? `fails "${e.keyword}"`;
}
