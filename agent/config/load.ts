// Reading a config file: the explicit --config, or the default path when it exists, checked
// against the schema (agent/config/schema.ts) and merged with the flags (flags win). A bad file
// is CONFIG_INVALID naming the file and the field, never a crash later.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { SlipwayError } from '../../shared/errors.js';
import { AgentConfigSchema, DEFAULT_CONFIG_PATH, withDefaults, type FileConfig } from './schema.js';

const checkFileConfig = TypeCompiler.Compile(AgentConfigSchema);

/** What the slug store needs; shared by `serve` and the `slug` and `dyno run` CLIs. */
export interface SlugSettings {
  dir: string;
  owner: { uid: number; gid: number };
  budgetBytes: number;
  floorBytes: number;
  s3: { region?: string; endpoint?: string; forcePathStyle?: boolean };
  /** `requireSignedSlugs` and `slugPublicKeys` (agent/slugs/signature.ts says what they mean);
   * absent: no signature required, no key trusted. */
  signing?: { required: boolean; publicKeys: string[] };
  /** The dyno cgroup parent: slug extraction runs in its child `slug-extract` (extract-cgroup.ts). */
  cgroupParent?: string;
}

/** `value` as a FileConfig, or CONFIG_INVALID: `<source>: <field> <problem>`. */
export function validateFileConfig(value: unknown, source: string): FileConfig {
  if (!checkFileConfig.Check(value)) {
    const e = checkFileConfig.Errors(value).First();
    throw new SlipwayError('CONFIG_INVALID', `${source}: ${e ? `${e.path || '/'} ${e.message}` : 'invalid'}`);
  }
  return value;
}

/** The config file (explicit, or the default path when it exists) merged with flags (flags win). */
export function loadFileConfig(configPath: string | undefined, flags: FileConfig = {}): FileConfig {
  let file: FileConfig = {};
  const path = configPath ?? (existsSync(DEFAULT_CONFIG_PATH) ? DEFAULT_CONFIG_PATH : undefined);
  if (path) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      throw new SlipwayError('CONFIG_INVALID', `${path}: ${(err as Error).message}`, { cause: err });
    }
    file = validateFileConfig(parsed, path);
  }
  return validateFileConfig({ ...file, ...flags }, 'flags');
}

export function slugSettings(config: FileConfig): SlugSettings {
  const c = withDefaults(config);
  const mb = 1024 * 1024;
  return {
    dir: join(c.stateDir, 'slugs'),
    owner: c.dynoUser,
    budgetBytes: c.slugCacheBudgetMb * mb,
    floorBytes: c.slugCacheFloorMb * mb,
    s3: c.s3,
    signing: { required: c.requireSignedSlugs, publicKeys: c.slugPublicKeys },
    cgroupParent: c.cgroupParent,
  };
}
