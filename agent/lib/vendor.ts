// Files vendored from other projects (the OCI runtime-spec JSON schema, Docker's default
// seccomp profile) live in `vendor/` at the package root, each with its licence. tsc does not
// copy JSON into dist/, so they are read from the package root, found from this module's own
// location: that works the same from agent/ (tap runs the TypeScript) and from dist/agent/.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

let root: string | undefined;

/** The directory holding slipway's package.json. */
export function packageRoot(): string {
  if (root) return root;
  let dir = import.meta.dirname;
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'slipway') return (root = dir);
    const up = dirname(dir);
    if (up === dir) throw new Error(`slipway's package.json not found above ${import.meta.dirname}`);
    dir = up;
  }
}

export function vendorPath(...parts: string[]): string {
  return join(packageRoot(), 'vendor', ...parts);
}

export function readVendorJson<T>(...parts: string[]): T {
  return JSON.parse(readFileSync(vendorPath(...parts), 'utf8')) as T;
}
