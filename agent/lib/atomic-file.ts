// The agent's own state files are written atomically: a temp file beside the target, fsync,
// rename. A crash leaves either the old file or the new one, never half of one.
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';

export async function writeFileAtomic(file: string, text: string, mode = 0o600): Promise<void> {
  const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`;
  const fh = await open(tmp, 'wx', mode);
  try {
    try {
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (err) {
    // A full or failing disk (ENOSPC, EIO) must not leave a temp file behind per attempt.
    await rm(tmp, { force: true });
    throw err;
  }
}
