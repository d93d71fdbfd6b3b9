// Slugs that a running dyno has mounted: an overlay whose lowerdir names `<storeDir>/<sha>`.
// Read from the kernel's mount table, so it is true across agent restarts and for the
// `slipway-agent slug gc` CLI, which runs beside the agent and cannot see its memory.
// Removing files under a mounted overlay's lower layer is undefined behaviour for the dyno.
import { readFile } from 'node:fs/promises';
import path from 'node:path';

/** `\040`-style octal escapes of /proc/mounts (space, tab, newline, backslash). */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}

/** The sha256s under `storeDir` that appear as an overlay lower dir in `mountsText`. */
export function mountedSlugs(mountsText: string, storeDir: string): Set<string> {
  const prefix = path.resolve(storeDir) + '/';
  const found = new Set<string>();
  for (const line of mountsText.split('\n')) {
    const fields = line.split(' ');
    if (fields[2] !== 'overlay' || fields[3] === undefined) continue;
    const lower = fields[3].split(',').find((o) => o.startsWith('lowerdir='));
    if (!lower) continue;
    for (const dir of unescapeMountField(lower.slice('lowerdir='.length)).split(':')) {
      if (!dir.startsWith(prefix)) continue;
      const sha = dir.slice(prefix.length).split('/')[0] ?? '';
      if (/^[a-f0-9]{64}$/.test(sha)) found.add(sha);
    }
  }
  return found;
}

export async function readMountedSlugs(storeDir: string, mountsFile = '/proc/self/mounts'): Promise<Set<string>> {
  return mountedSlugs(await readFile(mountsFile, 'utf8'), storeDir);
}
