// The config lives in agent/config/. This file only keeps the importers that others own compiling
// until they import agent/config/ themselves (agent/start.ts, agent/slugs/factory.ts, agent/cli/dyno-run.ts).
export { DEFAULTS, type FileConfig } from './config/schema.js';
export { loadFileConfig, slugSettings, type SlugSettings } from './config/load.js';
export type { AgentConfig } from './config/resolve.js';
