// The cgroup GNU tar runs in while it writes a slug: `<cgroupParent>/slug-extract`, beside
// the dynos' `<cgroupParent>/slipway-<id>`, with CPU and IO weights below theirs. What a
// slug costs the host is mostly kernel time in tar's own context (creating 200,000 empty
// files is 7-9 s of system time here, README "What a hostile slug costs the host"), and that
// is charged to tar's cgroup: when the CPUs are contended, a slug being extracted yields to
// the dynos already running instead of taking a dyno's share.
//
// One cgroup for every extraction of the host, not one per slug: ten slugs extracted at once
// weigh as much as one. Whoever finishes last removes it; a removal while another tar is
// still inside fails with EBUSY and is left to that one. The agent and a `slug fetch` CLI may
// share it: a removal that lands between another process's mkdir and its join makes that
// join see ENOENT, and the join starts over (JOIN_ATTEMPTS).
//
// Every call is synchronous: cgroupfs files are kernel memory (no disk), and `join` must be
// done before the extractor's next turn of the event loop, which is the earliest GNU tar can
// be fed a byte (extract.ts). Tar writes nothing before it reads its first block, so it is in
// the cgroup before it creates anything.
//
// Hierarchies: v1 uses the cpu and blkio hierarchies (each cgroupsPath lives in both); v2 the
// unified one, with the cpu and io controllers enabled in the ancestors' subtree_control as
// runc does for the dynos. A weight file the kernel does not offer (blkio.weight is CFQ's and
// went with it in 5.0; io.weight needs io.cost, io.bfq.weight the BFQ scheduler) is skipped
// and reported in `weights`; a weight the kernel offers but whose scheduler is not the
// disk's (this machine: blkio.bfq.weight, disk on mq-deadline) is set and has no effect.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SlipwayError } from '../../shared/errors.js';
import { detectCgroupVersion, type CgroupVersion } from '../host/cgroups.js';

export interface ExtractCgroupOptions {
  /** The agent's cgroupParent (`/slipway`): the extraction cgroup is its child. */
  parent: string;
  /** Detected from `root` unless given. */
  version?: CgroupVersion;
  /** Where the hierarchies are mounted; tests point it at fixture trees of v2's files. */
  root?: string;
}

export const EXTRACT_CGROUP_NAME = 'slug-extract';

/** v1 cpu.shares: a quarter of the smallest default dyno size (eco and basic, 512 in
 * shared/sizes.ts), an eighth of a standard-1x; the kernel's default for a new group is 1024. */
export const EXTRACT_CPU_SHARES = 128;
/** v2 cpu.weight: EXTRACT_CPU_SHARES through the conversion runc, crun and the LXC driver
 * apply to the dynos' shares (1 + (shares - 2) * 9999 / 262142), so both compare alike. */
export const EXTRACT_CPU_WEIGHT = 5;
/** IO weight in every file that has one: a tenth of the default (100; CFQ's blkio.weight
 * defaults to 500) that the dynos run with (they set none), and the least CFQ accepts. */
export const EXTRACT_IO_WEIGHT = 10;

/** How often a join starts over after another process removed the cgroup under it. */
const JOIN_ATTEMPTS = 3;

export interface WeightFile {
  file: string;
  value: string;
  /** False when the kernel offers no such file here (see the header). */
  applied: boolean;
}

interface Hierarchy {
  /** The cgroup's directory in this hierarchy. */
  dir: string;
  weights: { name: string; value: string }[];
}

export class ExtractCgroup {
  /** The cgroupsPath, as /proc/<pid>/cgroup shows it: `<parent>/slug-extract`. */
  readonly path: string;
  readonly version: CgroupVersion;
  private readonly root: string;
  private readonly hierarchies: Hierarchy[];
  private weightsSeen: WeightFile[] = [];

  constructor(opts: ExtractCgroupOptions) {
    const parent = `/${opts.parent.split('/').filter((s) => s !== '').join('/')}`;
    if (parent.split('/').some((s) => s === '..' || s === '.')) {
      throw new SlipwayError('INTERNAL', `refusing the cgroup parent ${JSON.stringify(opts.parent)} for slug extraction`);
    }
    this.root = opts.root ?? '/sys/fs/cgroup';
    this.version = opts.version ?? detectCgroupVersion(this.root);
    this.path = parent === '/' ? `/${EXTRACT_CGROUP_NAME}` : `${parent}/${EXTRACT_CGROUP_NAME}`;
    this.hierarchies = this.version === 2
      ? [{ dir: join(this.root, this.path), weights: [
        { name: 'cpu.weight', value: String(EXTRACT_CPU_WEIGHT) },
        { name: 'io.weight', value: `default ${EXTRACT_IO_WEIGHT}` },
        { name: 'io.bfq.weight', value: `default ${EXTRACT_IO_WEIGHT}` },
      ] }]
      // A v1 hierarchy that is not mounted is skipped (a host without blkio still gets cpu).
      : [
        { controller: 'cpu', weights: [{ name: 'cpu.shares', value: String(EXTRACT_CPU_SHARES) }] },
        { controller: 'blkio', weights: [
          { name: 'blkio.weight', value: String(EXTRACT_IO_WEIGHT) },
          { name: 'blkio.bfq.weight', value: String(EXTRACT_IO_WEIGHT) },
        ] },
      ].filter((h) => existsSync(join(this.root, h.controller))).map((h) => ({ dir: join(this.root, h.controller, this.path), weights: h.weights }));
  }

  /** The weight files of the last join: what was written and what the kernel lacked. */
  get weights(): readonly WeightFile[] {
    return this.weightsSeen;
  }

  /** Every directory the cgroup occupies (one per hierarchy), for cleanup checks. */
  get dirs(): string[] {
    return this.hierarchies.map((h) => h.dir);
  }

  /** Creates the cgroup if needed, sets its weights and moves `pid` into it. */
  join(pid: number): void {
    for (let attempt = 1; ; attempt++) {
      try {
        this.joinOnce(pid);
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' && attempt < JOIN_ATTEMPTS) continue;
        throw new SlipwayError('INTERNAL', `cannot put the slug extraction into cgroup ${this.path}: ${(err as Error).message}`, { cause: err });
      }
    }
  }

  /** Removes the cgroup unless another extraction is still inside (EBUSY) or it is gone. */
  release(): void {
    for (const h of this.hierarchies) {
      try {
        rmdirSync(h.dir);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'EBUSY' && code !== 'ENOTEMPTY') {
          throw new SlipwayError('INTERNAL', `cannot remove the slug extraction cgroup ${h.dir}: ${(err as Error).message}`, { cause: err });
        }
      }
    }
  }

  private joinOnce(pid: number): void {
    if (this.version === 2) this.enableControllers();
    const seen: WeightFile[] = [];
    for (const h of this.hierarchies) {
      mkdirSync(h.dir, { recursive: true });
      for (const w of h.weights) {
        const file = join(h.dir, w.name);
        const applied = existsSync(file);
        if (applied) writeFileSync(file, w.value);
        seen.push({ file, value: w.value, applied });
      }
      // cgroup.procs exists in every cgroup the kernel made: a missing one means the
      // directory was removed and made again as a plain one, or never was a cgroup.
      writeFileSync(join(h.dir, 'cgroup.procs'), String(pid), { flag: 'r+' });
    }
    this.weightsSeen = seen;
  }

  /** v2: a child's cpu.weight and io.weight exist only if every ancestor enables the
   * controller for its children. Each controller is enabled on its own, so a host without
   * the io controller still gets cpu; the ones already enabled are not written again. */
  private enableControllers(): void {
    const segments = this.path.split('/').filter((s) => s !== '').slice(0, -1);
    let dir = this.root;
    for (let i = 0; i <= segments.length; i++) {
      if (i > 0) {
        dir = join(dir, segments[i - 1] as string);
        mkdirSync(dir, { recursive: true });
      }
      const available = readWords(join(dir, 'cgroup.controllers'));
      const enabled = readWords(join(dir, 'cgroup.subtree_control'));
      for (const controller of ['cpu', 'io']) {
        if (!available.has(controller) || enabled.has(controller)) continue;
        try {
          writeFileSync(join(dir, 'cgroup.subtree_control'), `+${controller}`);
        } catch { /* that controller stays off: its weight file is then absent, and reported */ }
      }
    }
  }
}

function readWords(file: string): Set<string> {
  try {
    return new Set(readFileSync(file, 'utf8').split(/\s+/).filter((w) => w !== ''));
  } catch {
    return new Set();
  }
}
