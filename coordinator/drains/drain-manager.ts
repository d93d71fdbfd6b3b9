// The apps' log drains (Heroku's `drains:add`): the one owner of which drains exist. Each drain
// follows its app's lines as the agents ship them (app-logs.ts) and delivers their Logplex frames
// (drain.ts) to an https:// or syslog+tls:// URL. Drains are stored (store.ts StoredDrain) and
// restored by each leadership term; what a drain had queued when the term ended is lost, as
// the lines a coordinator holds are (the queue is memory, at most 1 MiB per drain).
//
// A drain's URL may carry credentials (https://user:password@host/): views show it without the
// password. The token (`d.<uuid>`) names the drain to the receiver (Logplex-Drain-Token) and
// in the API, as Heroku's drain tokens do. At most MAX_DRAINS_PER_APP per app.
import { randomUUID } from 'node:crypto';
import { SlipwayError } from '../../shared/errors.js';
import type { AppLogs } from '../app-logs.js';
import type { StoredDrain, StoreWrite } from '../store/store.js';
import { Drain, type DrainStats, type DrainTransport } from './drain.js';
import { HttpsTransport } from './https-transport.js';
import { logplexFrame } from './logplex-frame.js';
import { SyslogTlsTransport } from './syslog-transport.js';

/** Heroku allows a handful of drains per app; each costs a queue and a connection. */
export const MAX_DRAINS_PER_APP = 5;

export interface DrainView {
  id: string;
  token: string;
  /** The URL without its password. */
  url: string;
  createdAt: string;
  stats: DrainStats;
}

interface Running {
  stored: StoredDrain;
  drain: Drain;
  unfollow: () => void;
}

export interface DrainManagerOptions {
  logs: AppLogs;
  /** Where each change is written through (the leader's StoreWriter). */
  sink?: (w: StoreWrite) => void;
  /** CAs to trust besides the system's for the drains' TLS (a private log service; tests). */
  ca?: string;
}

export class DrainManager {
  private readonly drains = new Map<string, Running>();

  constructor(private readonly o: DrainManagerOptions) {}

  /** A new term starts from the stored drains. */
  restore(stored: readonly StoredDrain[]): void {
    for (const d of stored) this.start(d);
  }

  add(app: string, url: string): DrainView {
    checkDrainUrl(url);
    const mine = this.of(app);
    if (mine.some((r) => r.stored.url === url)) throw new SlipwayError('DRAIN_EXISTS', `app ${app} already drains to ${redactDrainUrl(url)}`);
    if (mine.length >= MAX_DRAINS_PER_APP) throw new SlipwayError('DRAIN_LIMIT', `app ${app} has ${mine.length} drains, the most an app may have`);
    const stored: StoredDrain = { app, id: randomUUID(), url, token: `d.${randomUUID()}`, createdAt: new Date().toISOString() };
    this.o.sink?.({ kind: 'drain', drain: stored });
    return view(this.start(stored));
  }

  /** Removes a drain named by its id, its token or its URL. */
  remove(app: string, which: string): DrainView {
    const r = this.of(app).find((x) => x.stored.id === which || x.stored.token === which || x.stored.url === which);
    if (!r) throw new SlipwayError('DRAIN_NOT_FOUND', `app ${app} has no drain ${JSON.stringify(redactDrainUrl(which))}`);
    this.stop(r);
    this.o.sink?.({ kind: 'drain_deleted', app, id: r.stored.id });
    return view(r);
  }

  list(app: string): DrainView[] {
    return this.of(app).map(view);
  }

  close(): void {
    for (const r of [...this.drains.values()]) this.stop(r);
  }

  private of(app: string): Running[] {
    return [...this.drains.values()].filter((r) => r.stored.app === app).sort((a, b) => a.stored.createdAt.localeCompare(b.stored.createdAt));
  }

  private start(stored: StoredDrain): Running {
    const drain = new Drain({ transport: this.transport(stored) });
    const unfollow = this.o.logs.follow(stored.app, (line) => drain.push(logplexFrame(line)));
    const r: Running = { stored, drain, unfollow };
    this.drains.set(`${stored.app}/${stored.id}`, r);
    return r;
  }

  private stop(r: Running): void {
    r.unfollow();
    r.drain.close();
    this.drains.delete(`${r.stored.app}/${r.stored.id}`);
  }

  private transport(d: StoredDrain): DrainTransport {
    const ca = this.o.ca !== undefined ? { ca: this.o.ca } : {};
    return d.url.startsWith('https://') ? new HttpsTransport({ url: d.url, drainToken: d.token, ...ca }) : new SyslogTlsTransport({ url: d.url, ...ca });
  }
}

function view(r: Running): DrainView {
  return { id: r.stored.id, token: r.stored.token, url: redactDrainUrl(r.stored.url), createdAt: r.stored.createdAt, stats: r.drain.stats() };
}

/** A drain URL is https:// or syslog+tls:// with a host; anything else is refused, plain
 * syslog and http included (app logs hold secrets: they travel encrypted or not at all). */
export function checkDrainUrl(url: string): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new SlipwayError('PROTOCOL_SCHEMA_VIOLATION', `drain URL ${JSON.stringify(redactDrainUrl(url))} is not a URL`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'syslog+tls:') {
    throw new SlipwayError('PROTOCOL_SCHEMA_VIOLATION', `a drain is https:// or syslog+tls://, not ${u.protocol}// (logs hold secrets: they go encrypted)`);
  }
  if (u.hostname === '' || url.length > 2048) throw new SlipwayError('PROTOCOL_SCHEMA_VIOLATION', 'a drain URL needs a host and at most 2048 characters');
}

/** The URL without its password (for views and errors). */
export function redactDrainUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/:[^:@/]*@/, ':***@');
  }
}
