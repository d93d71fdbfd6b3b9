// Docker's seccomp profile format (moby's profiles/seccomp/types.go), the format of the
// vendored default profile (vendor/docker-seccomp/default.json) and of the JSON that
// dockerSeccomp() hands to the Docker engine. parseDockerProfile() checks the shape before
// anything is resolved from it: a vendored file that does not match is a slipway bug
// (INTERNAL), never a silently weaker filter.
import { SlipwayError } from '../../../shared/errors.js';
import { readVendorJson } from '../../lib/vendor.js';

export interface DockerSeccompArg {
  index: number;
  value: number;
  /** Docker's Go type defaults it to 0 when absent. */
  valueTwo?: number;
  op: string;
}

/** includes/excludes: the rule applies when every `includes` condition holds and no
 * `excludes` condition does (moby's setupSeccomp). */
export interface DockerSeccompFilter {
  caps?: string[];
  arches?: string[];
  minKernel?: string;
}

export interface DockerSeccompSyscall {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: DockerSeccompArg[];
  comment?: string;
  includes?: DockerSeccompFilter;
  excludes?: DockerSeccompFilter;
}

export interface DockerSeccompProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  /** Either a flat list of SCMP_ARCH_* or the per-native-arch map, never both (moby's rule). */
  architectures?: string[];
  archMap?: { architecture: string; subArchitectures: string[] | null }[];
  syscalls: DockerSeccompSyscall[];
}

/** Where the vendored copy of moby's default profile lives under vendor/. */
export const DOCKER_DEFAULT_PROFILE_PATH = ['docker-seccomp', 'default.json'] as const;

export function loadDockerDefaultProfile(): DockerSeccompProfile {
  return parseDockerProfile(readVendorJson<unknown>(...DOCKER_DEFAULT_PROFILE_PATH), 'vendor/docker-seccomp/default.json');
}

function bad(where: string, what: string): never {
  throw new SlipwayError('INTERNAL', `seccomp profile ${where}: ${what}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function strings(v: unknown, where: string): string[] {
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) bad(where, 'expected an array of strings');
  return v as string[];
}

/** Syscall arguments and errno values are unsigned; above 2^53 a JS number would silently
 * change the value, so such a profile is refused rather than approximated. */
function uint(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) bad(where, `expected an unsigned integer below 2^53, got ${JSON.stringify(v)}`);
  return v;
}

function filter(v: unknown, where: string): DockerSeccompFilter | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v)) bad(where, 'expected an object');
  const f: DockerSeccompFilter = {};
  if (v.caps !== undefined) f.caps = strings(v.caps, `${where}.caps`);
  if (v.arches !== undefined) f.arches = strings(v.arches, `${where}.arches`);
  if (v.minKernel !== undefined) {
    if (typeof v.minKernel !== 'string') bad(`${where}.minKernel`, 'expected a string');
    f.minKernel = v.minKernel;
  }
  return f;
}

function syscall(v: unknown, where: string): DockerSeccompSyscall {
  if (!isObject(v)) bad(where, 'expected an object');
  // moby accepts the old single `name` too; the vendored profile only uses `names`.
  const names = v.names !== undefined ? strings(v.names, `${where}.names`) : typeof v.name === 'string' ? [v.name] : bad(where, 'no names');
  if (typeof v.action !== 'string') bad(`${where}.action`, 'expected a string');
  const s: DockerSeccompSyscall = { names, action: v.action };
  if (v.errnoRet !== undefined) s.errnoRet = uint(v.errnoRet, `${where}.errnoRet`);
  if (v.args !== undefined && v.args !== null) {
    if (!Array.isArray(v.args)) bad(`${where}.args`, 'expected an array');
    s.args = v.args.map((a: unknown, i) => {
      const at = `${where}.args[${i}]`;
      if (!isObject(a) || typeof a.op !== 'string') bad(at, 'expected {index, value, op}');
      return {
        index: uint(a.index, `${at}.index`),
        value: uint(a.value, `${at}.value`),
        ...(a.valueTwo === undefined ? {} : { valueTwo: uint(a.valueTwo, `${at}.valueTwo`) }),
        op: a.op,
      };
    });
  }
  if (typeof v.comment === 'string') s.comment = v.comment;
  const includes = filter(v.includes, `${where}.includes`);
  const excludes = filter(v.excludes, `${where}.excludes`);
  if (includes) s.includes = includes;
  if (excludes) s.excludes = excludes;
  return s;
}

/** Checks that `json` is a profile in Docker's format; `where` names it in errors. */
export function parseDockerProfile(json: unknown, where: string): DockerSeccompProfile {
  if (!isObject(json)) bad(where, 'expected an object');
  if (typeof json.defaultAction !== 'string') bad(`${where}.defaultAction`, 'expected a string');
  if (json.architectures !== undefined && json.archMap !== undefined) bad(where, 'both architectures and archMap');
  if (!Array.isArray(json.syscalls)) bad(`${where}.syscalls`, 'expected an array');
  const p: DockerSeccompProfile = {
    defaultAction: json.defaultAction,
    syscalls: json.syscalls.map((s: unknown, i) => syscall(s, `${where}.syscalls[${i}]`)),
  };
  if (json.defaultErrnoRet !== undefined) p.defaultErrnoRet = uint(json.defaultErrnoRet, `${where}.defaultErrnoRet`);
  if (json.architectures !== undefined) p.architectures = strings(json.architectures, `${where}.architectures`);
  if (json.archMap !== undefined) {
    if (!Array.isArray(json.archMap)) bad(`${where}.archMap`, 'expected an array');
    p.archMap = json.archMap.map((m: unknown, i) => {
      const at = `${where}.archMap[${i}]`;
      if (!isObject(m) || typeof m.architecture !== 'string') bad(at, 'expected {architecture, subArchitectures}');
      return { architecture: m.architecture, subArchitectures: m.subArchitectures === null || m.subArchitectures === undefined ? null : strings(m.subArchitectures, `${at}.subArchitectures`) };
    });
  }
  return p;
}
