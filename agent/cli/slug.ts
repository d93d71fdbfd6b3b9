// `slipway-agent slug fetch|ls|gc`: the slug cache from an operator's shell. Uses the same
// store code and the same state dir as the agent; safe beside a running agent (gc never
// removes a slug a dyno has mounted; see agent/slugs/in-use.ts).
import { loadCommandConfig, type CommandFlags } from '../config/flags.js';
import { optionLines } from '../config/help.js';
import { slugSettings } from '../config/load.js';
import { createRootLogger } from '../../shared/log.js';
import { createSlugStore } from '../slugs/factory.js';
import { SlipwayError } from '../../shared/errors.js';
import { readSignatureFile } from '../slugs/signature.js';

const SLUG_FLAGS = {
  keys: ['stateDir'],
  own: { sha256: { type: 'string' }, signature: { type: 'string' } },
  positionals: true,
} as const satisfies CommandFlags;

export const SLUG_USAGE = `Usage: slipway-agent slug <fetch|ls|gc> [options]

  fetch URL [--sha256 HEX] [--signature FILE]
                             fetch a slug (http(s)://, s3://, file://) into the cache; prints
                             {sha256, path, bytes, files, cached} as one JSON line. FILE is the
                             slug's minisign signature (\`minisign -S -m slug.tgz\` writes
                             slug.tgz.minisig), verified against slugPublicKeys before the slug
                             is extracted; with requireSignedSlugs, no FILE is SLUG_UNSIGNED
  ls                         one JSON line per cached slug {sha256, bytes, lastUsed, inUse},
                             then {entries, bytes, budgetBytes, freeBytes}
  gc                         evict unused slugs over the budget or under the free-space floor;
                             prints {evicted, fits}

Options:
${optionLines(SLUG_FLAGS, 'stateDir, dynoUser, the slug cache limits and s3')}
Logs: off; SLIPWAY_LOG_LEVEL=info prints the store's pino logs on stderr.
On failure: exit 1, stderr starts with the error code (e.g. SLUG_UNSAFE_PATH: ...).
`;

export async function slugCommand(argv: string[]): Promise<void> {
  const { config, values, positionals } = loadCommandConfig(argv, SLUG_FLAGS);
  const [sub, ...rest] = positionals;
  const settings = slugSettings(config);
  // stdout carries the command's JSON and stderr starts with the error code, so the store's
  // own logs are off unless SLIPWAY_LOG_LEVEL asks for them (then on stderr).
  const log = createRootLogger({ level: process.env.SLIPWAY_LOG_LEVEL ?? 'silent', destination: process.stderr }).child({ component: 'slugs' });
  const store = createSlugStore(settings, log);
  await store.init();
  const print = (v: unknown) => process.stdout.write(JSON.stringify(v) + '\n');
  switch (sub) {
    case 'fetch': {
      const url = rest[0];
      if (!url) throw new SlipwayError('CONFIG_INVALID', 'slug fetch needs a URL');
      const signature = values.signature === undefined ? undefined : await readSignatureFile(values.signature);
      if (signature !== undefined && (settings.signing?.publicKeys.length ?? 0) === 0) {
        process.stderr.write('slug fetch: slugPublicKeys is empty, so --signature is not checked\n');
      }
      const e = await store.ensure({ url, sha256: values.sha256?.toLowerCase(), signature });
      // Exit only once the slug's data is on disk, so the entry survives a host crash.
      await store.settled();
      print({ sha256: e.sha256, path: e.path, bytes: e.bytes, files: e.files, cached: e.cached });
      return;
    }
    case 'ls': {
      const usage = await store.usage();
      for (const s of usage.slugs) print(s);
      print({ entries: usage.entries, bytes: usage.bytes, budgetBytes: usage.budgetBytes, freeBytes: usage.freeBytes });
      return;
    }
    case 'gc':
      // Slugs still being flushed (fetched just before) are spared by gc: finish that first.
      await store.settled();
      print(await store.gc());
      return;
    default:
      throw new SlipwayError('CONFIG_INVALID', `unknown slug command ${JSON.stringify(sub ?? '')}\n${SLUG_USAGE}`);
  }
}
