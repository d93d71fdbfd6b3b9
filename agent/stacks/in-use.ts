// Stacks that a dyno has mounted: an overlay whose lowerdir names `<stacksDir>/<name>`, read
// from the kernel's mount table (as agent/slugs/in-use.ts does for slugs), so the answer holds
// across agent restarts and for the `stack import` CLI beside a running agent. overlayfs keeps
// the lowerdir string it was given, so a stack renamed away after the mount still shows here
// under its old path. Replacing a lower layer under a mounted overlay is undefined behaviour
// for the dyno.
import { readFile } from 'node:fs/promises';
import path from 'node:path';

/** `\040`-style octal escapes of /proc/mounts (space, tab, newline, backslash). */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}

/** The stack names under `stacksDir` that appear as an overlay lower dir in `mountsText`,
 * each with the mount points that use it. */
export function mountedStacks(mountsText: string, stacksDir: string): Map<string, string[]> {
  const prefix = path.resolve(stacksDir) + '/';
  const found = new Map<string, string[]>();
  for (const line of mountsText.split('\n')) {
    const fields = line.split(' ');
    if (fields[2] !== 'overlay' || fields[3] === undefined) continue;
    // `lowerdir=a:b`, or one `lowerdir+=a` per layer when mounted through fsconfig(2).
    const lowers = fields[3].split(',').filter((o) => o.startsWith('lowerdir=') || o.startsWith('lowerdir+='));
    for (const dir of lowers.flatMap((o) => unescapeMountField(o.slice(o.indexOf('=') + 1)).split(':'))) {
      if (!dir.startsWith(prefix)) continue;
      const name = dir.slice(prefix.length).split('/')[0] ?? '';
      if (!name) continue;
      const users = found.get(name) ?? [];
      users.push(unescapeMountField(fields[1] ?? ''));
      found.set(name, users);
    }
  }
  return found;
}

/** Mount points of the overlays that use stack `name`; [] when none does. */
export async function stackMounts(stacksDir: string, name: string, mountsFile = '/proc/self/mounts'): Promise<string[]> {
  return mountedStacks(await readFile(mountsFile, 'utf8'), stacksDir).get(name) ?? [];
}
