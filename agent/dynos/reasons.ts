// Why a dyno crashed or was killed, as its status carries it (`reason`: a stable code from
// shared/errors.ts, docs/errors.md, and Heroku's text for people). One table, so that the
// texts of R10, R12, R14 and R15 (and the warning before R15) read the same wherever they are
// raised and logged.
import type { WireError } from '../../shared/protocol.js';
import { SlipwayError, asSlipwayError } from '../../shared/errors.js';
import type { DynoExit } from '../runtime/driver.js';

const mb = (bytes: number) => Math.round(bytes / (1024 * 1024));

export const reasons = {
  /** The container exited without being asked to stop. An OOM kill comes from the cgroup's
   * counter, never from exit code 137 alone. */
  exited(exit: DynoExit): WireError {
    return exit.oomKilled
      ? new SlipwayError('DYNO_OOM_KILLED', 'Error R15 (Memory quota vastly exceeded): the kernel OOM-killed a process of the dyno').toWire()
      : new SlipwayError('DYNO_CRASHED', `Process exited with status ${exit.code ?? 'unknown'}`).toWire();
  },
  /** The launch failed: its own code (SLUG_CHECKSUM_MISMATCH, ...), else DYNO_START_FAILED. */
  startFailed(err: unknown): WireError {
    const e = asSlipwayError(err);
    return e.code === 'INTERNAL' ? new SlipwayError('DYNO_START_FAILED', e.message).toWire() : e.toWire();
  },
  lost(): WireError {
    return new SlipwayError('DYNO_CRASHED', 'The dyno was gone when the agent restarted').toWire();
  },
  bootTimeout(bootTimeoutMs: number): WireError {
    return new SlipwayError('DYNO_BOOT_TIMEOUT', `Error R10 (Boot timeout) -> Web process failed to bind to $PORT within ${Math.round(bootTimeoutMs / 1000)} seconds of launch`).toWire();
  },
  stopTimeout(graceMs: number): WireError {
    return new SlipwayError('DYNO_STOP_TIMEOUT', `Error R12 (Exit timeout) -> At least one process failed to exit within ${Math.round(graceMs / 1000)} seconds of SIGTERM`).toWire();
  },
  /** R14 is a warning, not a reason: only its text. */
  quotaExceededText(totalBytes: number, quotaBytes: number): string {
    return `Error R14 (Memory quota exceeded): ${mb(totalBytes)} MB of ${mb(quotaBytes)} MB`;
  },
  /** The warning before R15 (memory-projection.ts), not a reason either. Whole minutes, as an
   * operator reads them; under a minute and a half reads "~1 min". */
  memoryProjectedText(projectedMs: number): string {
    return `Memory projected to reach the R15 limit in ~${Math.max(1, Math.round(projectedMs / 60_000))} min`;
  },
  memoryExceeded(totalBytes: number, quotaBytes: number): WireError {
    return new SlipwayError('DYNO_MEMORY_EXCEEDED', `Error R15 (Memory quota vastly exceeded): ${mb(totalBytes)} MB of ${mb(quotaBytes)} MB`).toWire();
  },
};
