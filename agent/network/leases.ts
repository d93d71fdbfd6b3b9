// Address leases: one file per address handed out, `<dir>/<address>`, created with O_EXCL so
// that two processes (the agent and a one-off `dyno run` on the same host) can never hold the
// same address. The file names the network namespace and host veth that use the address and
// the process that holds it; the dyno record (agent/dynos/dyno-records.ts) names the same
// network, which is how a re-adopted dyno's lease is told from an orphan (host-network.ts
// reconcile). The directory is the agent's state dir, so a lease outlives the agent process;
// what it points at (the namespace) does not outlive a reboot, and reconcile removes it then.
import { mkdir, open, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../lib/atomic-file.js';

export const LEASE_VERSION = 1;

export interface Lease {
  address: string;
  netns: string;
  hostVeth: string;
  /** The process holding it: the agent, or a `dyno run`. */
  pid: number;
}

export class Leases {
  constructor(readonly dir: string) {}

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  private file(address: string): string {
    return join(this.dir, address);
  }

  /** false: someone holds the address already. */
  async take(lease: Lease): Promise<boolean> {
    let fh;
    try {
      fh = await open(this.file(lease.address), 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    }
    try {
      await fh.writeFile(JSON.stringify({ version: LEASE_VERSION, ...lease }) + '\n');
    } finally {
      await fh.close();
    }
    return true;
  }

  /** Rewrites a lease this process now holds (a re-adoption takes over its dyno's). */
  async hold(lease: Lease): Promise<void> {
    await writeFileAtomic(this.file(lease.address), JSON.stringify({ version: LEASE_VERSION, ...lease }) + '\n');
  }

  async drop(address: string): Promise<void> {
    await rm(this.file(address), { force: true });
  }

  /** Every lease; an unreadable file is reported as a lease of nobody (pid 0), so that it is removed. */
  async list(): Promise<Lease[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return [];
    }
    const out: Lease[] = [];
    for (const name of names) {
      if (name.includes('.tmp-')) {
        await rm(join(this.dir, name), { force: true });
        continue;
      }
      try {
        const l = JSON.parse(await readFile(this.file(name), 'utf8')) as Partial<Lease>;
        // The names go into iproute2 batch lines: only the shapes host-network.ts makes.
        if (typeof l.netns === 'string' && /^[a-z][a-z0-9]*-[0-9a-f]{8}$/.test(l.netns) && typeof l.hostVeth === 'string' && /^sw[0-9a-f]{10}$/.test(l.hostVeth) && typeof l.pid === 'number') {
          out.push({ address: name, netns: l.netns, hostVeth: l.hostVeth, pid: l.pid });
          continue;
        }
      } catch { /* reported below */ }
      out.push({ address: name, netns: '', hostVeth: '', pid: 0 });
    }
    return out;
  }
}
