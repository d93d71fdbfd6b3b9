// Where the developer CLI finds the coordinator and its API token, first found wins:
//   1. flags: --api URL, --token-file PATH, --ca-file PATH
//   2. env:   SLIPWAY_API_URL, SLIPWAY_API_TOKEN, SLIPWAY_API_CA_FILE
//   3. the credentials file `slipway login` writes: $XDG_CONFIG_HOME/slipway/credentials.json
//      (else ~/.config/slipway/credentials.json), {apiUrl, token, caFile?}, mode 0600
// The URL defaults to the coordinator's own default listener (http://127.0.0.1:7700). There is
// no default token: without one the CLI says where to put it. A credentials file that others
// may read is refused, as ssh refuses such a key: the token scales every app.
import { chmodSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { SlipwayError } from '../shared/errors.js';

export const DEFAULT_API_URL = 'http://127.0.0.1:7700';

export interface Credentials {
  apiUrl: string;
  token: string;
  /** PEM text of the CA that signed the coordinator's certificate (an https URL). */
  ca?: string;
}

export interface CredentialFlags {
  api?: string | undefined;
  'token-file'?: string | undefined;
  'ca-file'?: string | undefined;
}

export function credentialsPath(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME !== '' ? env.XDG_CONFIG_HOME : join(env.HOME ?? homedir(), '.config');
  return join(base, 'slipway', 'credentials.json');
}

interface StoredCredentials {
  apiUrl?: unknown;
  token?: unknown;
  caFile?: unknown;
}

function readStored(path: string): StoredCredentials | undefined {
  let text: string;
  try {
    const st = statSync(path);
    if ((st.mode & 0o077) !== 0) {
      throw new SlipwayError('CONFIG_INVALID', `${path} may be read by others (mode ${(st.mode & 0o777).toString(8)}): chmod 600 it, it holds an API token`);
    }
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (err instanceof SlipwayError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SlipwayError('CONFIG_INVALID', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
    return parsed;
  } catch (err) {
    throw new SlipwayError('CONFIG_INVALID', `${path} is not a JSON object {apiUrl, token} (write it again with slipway login)`, { cause: err });
  }
}

function readTrimmed(path: string, what: string): string {
  try {
    const text = readFileSync(path, 'utf8').trim();
    if (text === '') throw new Error('it is empty');
    return text;
  } catch (err) {
    throw new SlipwayError('CONFIG_INVALID', `cannot read ${what} ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** The credentials to use (throws CONFIG_INVALID when there is no token or a bad URL). */
export function resolveCredentials(flags: CredentialFlags, env: NodeJS.ProcessEnv): Credentials {
  const file = credentialsPath(env);
  const stored = readStored(file);
  const apiUrl = flags.api ?? nonEmpty(env.SLIPWAY_API_URL) ?? (typeof stored?.apiUrl === 'string' ? stored.apiUrl : undefined) ?? DEFAULT_API_URL;
  checkUrl(apiUrl);
  const token = flags['token-file'] !== undefined ? readTrimmed(flags['token-file'], '--token-file')
    : nonEmpty(env.SLIPWAY_API_TOKEN?.trim()) ?? (typeof stored?.token === 'string' && stored.token !== '' ? stored.token : undefined);
  if (token === undefined) {
    throw new SlipwayError('CONFIG_INVALID', `no API token: set SLIPWAY_API_TOKEN, pass --token-file PATH, or run slipway login (it writes ${file})`);
  }
  const caFile = flags['ca-file'] ?? nonEmpty(env.SLIPWAY_API_CA_FILE) ?? (typeof stored?.caFile === 'string' ? stored.caFile : undefined);
  return { apiUrl, token, ...(caFile !== undefined ? { ca: readTrimmed(caFile, '--ca-file') } : {}) };
}

/** Writes the credentials file (0600, through a rename so a reader never sees half of it). */
export function writeCredentials(env: NodeJS.ProcessEnv, c: { apiUrl: string; token: string; caFile?: string }): string {
  const file = credentialsPath(env);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(c, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
  return file;
}

export function checkUrl(apiUrl: string): void {
  let u: URL;
  try {
    u = new URL(apiUrl);
  } catch {
    throw new SlipwayError('CONFIG_INVALID', `the API URL ${JSON.stringify(apiUrl)} is not a URL (http://HOST:PORT or https://HOST)`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new SlipwayError('CONFIG_INVALID', `the API URL must be http:// or https://, got ${JSON.stringify(apiUrl)}`);
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}
