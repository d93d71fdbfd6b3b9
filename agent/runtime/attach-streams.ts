// The agent's half of an attached dyno's stdio (ContainerSpec.stdio, DynoAttach), shared by the
// drivers: the demultiplexing of one byte stream into the dyno's stdout and stderr with
// backpressure, a stdin that never throws at its writer, and the registry that hands each
// dyno's streams out once.
//
// Frames are Docker's stdcopy framing, `[type: 1 byte][0 0 0][length: 4 bytes BE][payload]`:
// the Docker engine sends them on a hijacked attach without a tty, and the conmon relay
// (conmon/attach-relay.ts) writes the same header in front of each packet it gets from conmon.
//
// Memory stays bounded: a payload is pushed into its Readable as a slice of the chunk it came
// in (no copy, no reassembly), and once either Readable is above its highWaterMark the source
// is paused until that one is read from. What waits meanwhile waits in the runtime's pipes and
// socket buffers, and the dyno blocks on its writes. One source carries both streams, so a
// consumer that reads only stdout stalls once stderr is full; read both (or destroy one).
import { Readable, Writable } from 'node:stream';
import { SlipwayError } from '../../shared/errors.js';
import type { DynoAttach } from './driver.js';

/** A terminal's size when the caller gave none: the VT100's, every terminal's default. */
export const DEFAULT_TTY_COLS = 80;
export const DEFAULT_TTY_ROWS = 24;

export type FrameTarget = 'stdout' | 'stderr' | 'control';

const HEADER_BYTES = 8;

export interface OutputStreams {
  stdout: Readable;
  stderr: Readable;
}

/**
 * The dyno's output from `source`. `channels` maps a frame type to its stream; undefined = raw
 * (a tty: every byte is stdout, stderr ends at once). A `control` frame calls onControl (the
 * relay's "connected" marker); a frame of an unknown type is dropped.
 */
export function demuxOutput(source: Readable, channels: Record<number, FrameTarget> | undefined, onControl?: (type: number) => void): OutputStreams {
  // A stream's read() asks for more, so it has room; the source resumes unless the other one
  // is full, which would otherwise grow by a chunk on every read of this one. A declined read
  // is not lost: the other stream's own read resumes the source once it is drained.
  const stdout: Readable = new Readable({ read: () => resumeIfRoom(stderr) });
  const stderr: Readable = new Readable({ read: () => resumeIfRoom(stdout) });
  const targets = { stdout, stderr };
  const resumeIfRoom = (other: Readable) => {
    if (other.readableEnded || other.destroyed || other.readableLength < other.readableHighWaterMark) source.resume();
  };
  const push = (target: Readable, data: Buffer) => {
    if (target.destroyed || target.readableEnded) return;
    if (!target.push(data)) source.pause();
  };
  if (!channels) {
    stderr.push(null);
    source.on('data', (chunk: Buffer) => push(stdout, chunk));
  } else {
    const header = Buffer.alloc(HEADER_BYTES);
    let headerHave = 0;
    let remaining = 0;
    let current: FrameTarget | undefined;
    source.on('data', (chunk: Buffer) => {
      let off = 0;
      while (off < chunk.length) {
        if (remaining === 0) {
          const n = Math.min(HEADER_BYTES - headerHave, chunk.length - off);
          chunk.copy(header, headerHave, off, off + n);
          headerHave += n;
          off += n;
          if (headerHave < HEADER_BYTES) break;
          headerHave = 0;
          const type = header.readUInt8(0);
          remaining = header.readUInt32BE(4);
          current = channels[type];
          if (current === 'control') onControl?.(type);
          continue;
        }
        const n = Math.min(remaining, chunk.length - off);
        if (current === 'stdout' || current === 'stderr') push(targets[current], chunk.subarray(off, off + n));
        off += n;
        remaining -= n;
      }
    });
  }
  const end = () => {
    for (const r of [stdout, stderr]) if (!r.destroyed && !r.readableEnded) r.push(null);
  };
  source.on('end', end);
  // A broken source (the engine's connection reset) ends the streams rather than erroring
  // them: nobody may be listening yet (attach() comes after start()), and an unhandled 'error'
  // would take the agent down. How the dyno ended is wait()'s to tell.
  source.on('error', end);
  return { stdout, stderr };
}

/**
 * The dyno's stdin as given to the attach's user: writes go to `sink` with its backpressure;
 * once the sink is gone (the dyno exited, the relay ended) they are dropped instead of erroring,
 * as they are for a dyno started without stdin (sink undefined). end() calls `onEnd` (the
 * runtime then closes the dyno's fd 0).
 */
export function stdinWriter(sink: Writable | undefined, onEnd: () => void): Writable {
  let gone = !sink;
  sink?.on('error', () => { gone = true; });
  sink?.on('close', () => { gone = true; });
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (gone || !sink) return cb();
      if (sink.write(chunk)) return cb();
      const done = () => {
        sink.off('drain', done);
        sink.off('close', done);
        cb();
      };
      sink.on('drain', done);
      sink.on('close', done);
    },
    final(cb) {
      if (!gone) onEnd();
      cb();
    },
  });
}

/** An attach as the driver keeps it: the user's streams and how to let them go. */
export interface HeldAttach {
  attach: DynoAttach;
  /** Resolves once every helper process of the attach has exited (bounded by the driver). */
  released(): Promise<void>;
}

/** Each dyno's streams, by container id, given out once by take(); every start made here. */
export class AttachRegistry {
  private readonly unclaimed = new Map<string, HeldAttach>();
  private readonly claimed = new Map<string, HeldAttach>();

  add(containerId: string, held: HeldAttach): void {
    this.unclaimed.set(containerId, held);
  }

  /** The streams of `containerId`, once; RUNTIME_ATTACH_UNAVAILABLE for a second call, a
   * recovered dyno or any other handle. */
  take(containerId: string): DynoAttach {
    const held = this.unclaimed.get(containerId);
    if (!held) {
      throw new SlipwayError('RUNTIME_ATTACH_UNAVAILABLE', this.claimed.has(containerId)
        ? `the streams of ${containerId} were already given out`
        : `${containerId} was not started attached by this agent process`);
    }
    this.unclaimed.delete(containerId);
    this.claimed.set(containerId, held);
    return held.attach;
  }

  /** Closes the streams of `containerId` (destroy(): whether or not they were taken) and waits
   * for their helpers to be gone. */
  async release(containerId: string): Promise<void> {
    const held = this.unclaimed.get(containerId) ?? this.claimed.get(containerId);
    this.unclaimed.delete(containerId);
    this.claimed.delete(containerId);
    if (!held) return;
    held.attach.close();
    await held.released();
  }
}
