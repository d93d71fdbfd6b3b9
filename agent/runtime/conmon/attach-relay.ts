// The attach relay of the conmon drivers (runc, LXC): a dyno started with ContainerSpec.stdio
// gets its stdio through conmon's attach socket, `<bundle>/attach` (conmon binds it through
// the `<socket dir>/<uuid>` symlink, which points at the bundle; conn_sock.c). That socket is
// SOCK_SEQPACKET, which Node cannot open, so a small Perl script (perl-base is essential in
// Debian: every host has it, Socket included) connects and turns it into pipes:
// - towards the agent, one frame per packet conmon sends, `[pipe][0 0 0][length BE][bytes]`
//   (Docker's stdcopy header, so attach-streams.ts demuxes both runtimes alike), conmon's
//   pipe byte kept: 2 stdout, 3 stderr (conmon's stdpipe_t; 1 would be stdin, unused). A
//   first frame of type 0 and length 0 says the relay is connected.
// - from the agent, raw stdin bytes, sent in packets of at most 8 KiB (conmon 2.1.6 reads
//   32767 bytes per packet and truncates a longer one); stdin EOF is shutdown(SHUT_WR), on
//   which conmon closes the dyno's stdin (-i without --leave-stdin-open) and keeps the output
//   coming.
// Two processes, so that a stalled stdout never stops stdin nor the reverse; every write is
// blocking, which is the backpressure: an agent that stops reading leaves the relay blocked on
// its stdout, conmon blocked on the socket (it writes to attach clients with blocking writes),
// and the dyno blocked on its pipe. The relay ends when conmon closes the socket (the dyno
// exited, conmon drained its output); it runs in a process group of its own, which close()
// kills whole.
import { spawn, type ChildProcess } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SlipwayError } from '../../../shared/errors.js';
import type { ContainerStdio, DynoAttach } from '../driver.js';
import { demuxOutput, stdinWriter, type HeldAttach } from '../attach-streams.js';
import { raceTimeout } from '../common.js';

/** Starting perl and connecting takes ~5 ms here; 10 s is a wedged host or conmon. */
export const RELAY_CONNECT_TIMEOUT_MS = 10_000;
/** After SIGKILL a process is gone in microseconds; this only bounds a destroy's wait. */
const RELAY_EXIT_TIMEOUT_MS = 5_000;
const RELAY_FILE = 'attach-relay.pl';
const STDERR_KEEP = 2_000;

export const ATTACH_RELAY_SCRIPT = String.raw`#!/usr/bin/perl
# slipway's conmon attach relay (agent/runtime/conmon/attach-relay.ts has the protocol).
use strict;
use warnings;
use Socket qw(AF_UNIX SOCK_SEQPACKET SHUT_WR MSG_NOSIGNAL pack_sockaddr_un);
use POSIX ();

my $path = shift @ARGV or die "usage: attach-relay.pl SOCKET\n";
socket(my $sock, AF_UNIX, SOCK_SEQPACKET, 0) or die "attach relay: socket: $!\n";
connect($sock, pack_sockaddr_un($path)) or die "attach relay: connect $path: $!\n";
binmode STDIN;
binmode STDOUT;

sub put {
  my ($data) = @_;
  my $off = 0;
  while ($off < length $data) {
    my $n = syswrite(STDOUT, $data, length($data) - $off, $off);
    POSIX::_exit(1) unless defined $n;
    $off += $n;
  }
}

put(pack('CxxxN', 0, 0));
my $child = fork() // die "attach relay: fork: $!\n";
if ($child == 0) {
  close STDOUT;
  my $buf;
  while (1) {
    my $n = sysread(STDIN, $buf, 8192);
    last unless $n;
    last unless defined send($sock, $buf, MSG_NOSIGNAL);
  }
  shutdown($sock, SHUT_WR);
  POSIX::_exit(0);
}
close STDIN;
my $buf;
while (1) {
  last unless defined recv($sock, $buf, 65536, 0);
  last if length($buf) == 0;
  put(pack('CxxxN', ord($buf), length($buf) - 1) . substr($buf, 1));
}
kill 'KILL', $child;
waitpid($child, 0);
exit 0;
`;

/** conmon's stdpipe_t values, as the relay passes them on (frame type 0 is the relay's own). */
const CONMON_CHANNELS = { 0: 'control', 2: 'stdout', 3: 'stderr' } as const;

export interface RelayOptions {
  /** The conmon bundle dir: holds the attach socket and the ctl fifo. */
  dir: string;
  stdio: ContainerStdio;
  /** The terminal's resize (tty only). */
  resize(cols: number, rows: number): Promise<void>;
}

/**
 * Starts the relay for the dyno whose conmon bundle is `dir` and resolves once it is connected
 * to conmon's attach socket. conmon may not have accepted the connection yet, but it does
 * before it reads any output: its attach socket's watch is older than the stdio ones in its
 * main loop, and GLib dispatches ready sources of one priority oldest first. The dyno's
 * command must not have run yet (the drivers hold it until this resolves), or what it printed
 * before is lost.
 */
export async function connectAttachRelay(o: RelayOptions): Promise<HeldAttach> {
  const script = join(o.dir, RELAY_FILE);
  await writeFile(script, ATTACH_RELAY_SCRIPT, { mode: 0o500 });
  // cwd = the bundle and a relative socket path: the dyno dir may be deeper than a unix
  // socket path's 108 bytes allow.
  const relay = spawn('perl', [script, 'attach'], { cwd: o.dir, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  let stderrText = '';
  relay.stderr.on('data', (b: Buffer) => { if (stderrText.length < STDERR_KEEP) stderrText += b.toString('utf8'); });
  // 'close': both relay processes are gone (the second one holds stderr until it exits).
  let gone = false;
  const exited = new Promise<void>((resolve) => relay.once('close', () => { gone = true; resolve(); }));
  let connected!: () => void;
  const connectedP = new Promise<void>((resolve) => { connected = resolve; });
  const { stdout, stderr } = demuxOutput(relay.stdout, CONMON_CHANNELS, () => connected());
  const failed = new Promise<never>((_, reject) => {
    relay.once('error', (err) => reject(new SlipwayError('RUNTIME_FAILED', `attach relay: ${err.message}`, { cause: err })));
    void exited.then(() => reject(new SlipwayError('RUNTIME_FAILED', `attach relay for ${o.dir} ended before it connected: ${stderrText.trim().slice(0, 500) || `exit ${relay.exitCode ?? relay.signalCode}`}`)));
  });
  failed.catch(() => undefined);
  // Only while the group exists: its id could be another group's once both are gone.
  const killGroup = () => { if (!gone) killRelay(relay); };
  try {
    const ok = await raceTimeout(Promise.race([connectedP.then(() => true), failed]), RELAY_CONNECT_TIMEOUT_MS);
    if (!ok) throw new SlipwayError('RUNTIME_TIMEOUT', `attach relay for ${o.dir} did not connect within ${RELAY_CONNECT_TIMEOUT_MS} ms`);
  } catch (err) {
    killGroup();
    await raceTimeout(exited, RELAY_EXIT_TIMEOUT_MS);
    throw err;
  }
  // EPIPE once the relay is gone is expected (a dyno that exited); the writer drops the rest.
  relay.stdin.on('error', () => undefined);
  // Without stdio.stdin conmon has no stdin to write to (it would hold the first packet
  // forever): end at once, and drop what the user writes.
  if (!o.stdio.stdin) relay.stdin.end();
  const stdin = stdinWriter(o.stdio.stdin ? relay.stdin : undefined, () => relay.stdin.end());
  let closed = false;
  const attach: DynoAttach = {
    stdout, stderr, stdin,
    resize: (cols, rows) => (o.stdio.tty ? o.resize(cols, rows) : Promise.resolve()),
    close: () => {
      if (closed) return;
      closed = true;
      killGroup();
      for (const s of [stdout, stderr, stdin]) s.destroy();
    },
  };
  return { attach, released: async () => { await raceTimeout(exited, RELAY_EXIT_TIMEOUT_MS); } };
}

/** conmon's resize of the dyno's terminal: `1 ROWS COLS\n` (WIN_RESIZE_EVENT) into the `ctl`
 * fifo conmon makes in the bundle dir and reads (ctrl.c). A dyno whose conmon is gone has no
 * terminal left to resize: a no-op. conmon processes each read as one message, so two resizes
 * that meet in the fifo count as the first; callers resize seldom enough (a window's size). */
export async function conmonResize(dir: string, cols: number, rows: number): Promise<void> {
  if (!Number.isInteger(cols) || !Number.isInteger(rows) || cols < 1 || rows < 1 || cols > 65535 || rows > 65535) {
    throw new SlipwayError('RUNTIME_FAILED', `invalid terminal size ${cols}x${rows}`);
  }
  let fh;
  try {
    // Non-blocking: opening a fifo without a reader would otherwise wait forever.
    fh = await open(join(dir, 'ctl'), fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENXIO' || code === 'ENOENT') return;
    throw new SlipwayError('RUNTIME_FAILED', `resize ${dir}: ${(err as Error).message}`, { cause: err });
  }
  try {
    await fh.write(`1 ${rows} ${cols}\n`);
  } finally {
    await fh.close();
  }
}

/** SIGKILL to the relay's process group (both of its processes); never to anything else. */
function killRelay(relay: ChildProcess): void {
  if (relay.pid === undefined) return;
  try {
    process.kill(-relay.pid, 'SIGKILL');
  } catch {
    // The group is gone already.
  }
}
