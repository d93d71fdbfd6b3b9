import t from 'tap';
import { SlipwayError } from '../../../../shared/errors.js';
import { classifyTarError, sourceFailure } from '../../../../agent/slugs/failures.js';

t.test('source failures are retryable SLUG_FETCH_FAILED with the cause kept', async (t) => {
  const cause = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
  const err = sourceFailure(cause);
  t.match(err, { code: 'SLUG_FETCH_FAILED', retryable: true, message: /ECONNRESET: socket hang up/ });
  t.equal(err.cause, cause);
  const coded = new SlipwayError('SLUG_FORBIDDEN', 'no');
  t.equal(sourceFailure(coded), coded, 'a coded error passes through');
});

t.test('tar and zlib errors map to slug codes', async (t) => {
  const tarErr = (tarCode: string, message: string, extra: object = {}) => Object.assign(new Error(message), { tarCode, code: tarCode, ...extra });
  t.match(classifyTarError(tarErr('TAR_BAD_ARCHIVE', 'Unrecognized archive format')), { code: 'SLUG_CORRUPT', retryable: false });
  t.match(classifyTarError(tarErr('TAR_ABORT', 'unexpected end of file', { code: 'Z_BUF_ERROR' })), { code: 'SLUG_CORRUPT' });
  t.match(classifyTarError(tarErr('TAR_ENTRY_INVALID', 'checksum failure')), { code: 'SLUG_CORRUPT' });
  t.match(classifyTarError(tarErr('TAR_ENTRY_UNSUPPORTED', 'unsupported entry type: FIFO')), { code: 'SLUG_UNSAFE_ENTRY' });
  t.match(classifyTarError(tarErr('TAR_ENTRY_INFO', 'stripping / from absolute path')), { code: 'SLUG_UNSAFE_PATH' });
  t.match(classifyTarError(tarErr('TAR_ENTRY_ERROR', "path contains '..'")), { code: 'SLUG_UNSAFE_PATH' });
  t.match(classifyTarError(tarErr('TAR_ABORT', 'max decompression ratio exceeded: 1200 > 1000')), { code: 'SLUG_TOO_LARGE' });
  t.match(classifyTarError(tarErr('TAR_ENTRY_ERROR', 'path excessively deep')), { code: 'SLUG_TOO_LARGE' });
  t.match(classifyTarError(Object.assign(new Error('Cannot extract through symbolic link'), { name: 'SymlinkError' })), { code: 'SLUG_UNSAFE_ENTRY' });
});

t.test('local file system failures are INTERNAL (retryable), not the slug\'s fault', async (t) => {
  const enospc = Object.assign(new Error('no space left on device'), { code: 'ENOSPC', syscall: 'write', tarCode: 'TAR_ENTRY_ERROR' });
  t.match(classifyTarError(enospc), { code: 'SLUG_DISK_FULL', retryable: true, message: /no space left/ }, 'a full disk has its own code');
  t.match(classifyTarError(Object.assign(new Error('quota'), { code: 'EDQUOT', syscall: 'write' })), { code: 'SLUG_DISK_FULL' });
  const eacces = Object.assign(new Error('permission denied'), { code: 'EACCES', syscall: 'mkdir' });
  t.match(classifyTarError(eacces), { code: 'INTERNAL' });
  t.match(classifyTarError(Object.assign(new Error('cwd gone'), { name: 'CwdError' })), { code: 'INTERNAL' });
});
