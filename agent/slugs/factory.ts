// Builds the slug store with every source: http(s) (presigned URLs), s3:// (AWS SDK v3,
// default credential chain) and file://. The S3 source is loaded on first use: the SDK
// costs ~100 ms and ~20 MB to load, which a host that only sees presigned URLs never pays.
import type { Readable } from 'node:stream';
import type { SlugSettings } from '../config/load.js';
import type { Logger } from '../../shared/log.js';
import { FileSlugSource } from './file-source.js';
import { HttpSlugSource, type SlugSource } from './http-source.js';
import { SlugStore, type SlugStoreOptions } from './store.js';

class LazyS3Source implements SlugSource {
  readonly schemes = ['s3:'] as const;
  private loaded: Promise<SlugSource> | undefined;

  constructor(private readonly settings: SlugSettings['s3'], private readonly log: Logger) {}

  async open(url: URL, signal: AbortSignal): Promise<Readable> {
    // The SDK warns on stderr that it will need Node 22 one day; that line would precede the
    // CLI's error code and adds nothing for an operator of this Node 20 agent.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    this.loaded ??= import('./s3-source.js').then(({ S3SlugSource }) => new S3SlugSource({ log: this.log, ...this.settings }));
    return (await this.loaded).open(url, signal);
  }
}

export function slugSources(settings: SlugSettings, log: Logger): SlugSource[] {
  return [new HttpSlugSource({ log }), new LazyS3Source(settings.s3, log), new FileSlugSource({ log })];
}

export function createSlugStore(settings: SlugSettings, log: Logger, extra: Partial<SlugStoreOptions> = {}): SlugStore {
  return new SlugStore({
    dir: settings.dir,
    owner: settings.owner,
    log,
    sources: slugSources(settings, log),
    cache: { budgetBytes: settings.budgetBytes, floorBytes: settings.floorBytes },
    signing: settings.signing,
    ...(settings.cgroupParent ? { extractCgroup: { parent: settings.cgroupParent } } : {}),
    ...extra,
  });
}
