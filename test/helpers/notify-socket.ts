// A real sd_notify receiver for hosts without systemd as pid 1 (this machine): a unix datagram
// socket bound with SO_PASSCRED, as systemd binds its notify socket, so each message arrives
// with the sender's pid from the kernel, the fact NotifyAccess=main checks. Node has no unix
// datagram sockets, so a short python3 program (on every machine of this kind) does the
// receiving and prints one JSON line per datagram. The VM suite (test/vm/) shows the same
// messages accepted by systemd itself.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface NotifyMessage { pid: number; fields: Record<string, string>; at: number }

export interface NotifySocket {
  path: string;
  messages: NotifyMessage[];
  /** The first message (from `from` on) whose fields include `key` (and `value`, if given). */
  waitFor(key: string, opts?: { value?: string | RegExp; from?: number; timeoutMs?: number }): Promise<NotifyMessage>;
  close(): Promise<void>;
}

const RECEIVER = String.raw`
import socket, struct, sys, json, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind(sys.argv[1])
print(json.dumps({"bound": True}), flush=True)
while True:
    msg, anc, _, _ = s.recvmsg(65536, socket.CMSG_SPACE(12))
    pid = -1
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iii", data[:12])[0]
    fields = dict(l.split("=", 1) for l in msg.decode().split("\n") if "=" in l)
    print(json.dumps({"pid": pid, "fields": fields, "at": time.monotonic() * 1000}), flush=True)
`;

export async function openNotifySocket(): Promise<NotifySocket> {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-notify-'));
  const path = join(dir, 'notify.sock');
  const child = spawn('python3', ['-c', RECEIVER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const messages: NotifyMessage[] = [];
  const listeners = new Set<() => void>();
  let buf = '';
  let bound!: () => void;
  const isBound = new Promise<void>((resolve) => { bound = resolve; });
  child.stdout.on('data', (b: Buffer) => {
    buf += b.toString('utf8');
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = JSON.parse(buf.slice(0, nl)) as NotifyMessage & { bound?: boolean };
      buf = buf.slice(nl + 1);
      if (line.bound) { bound(); continue; }
      messages.push(line);
      for (const l of [...listeners]) l();
    }
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await Promise.race([isBound, new Promise((_, reject) => setTimeout(() => reject(new Error('notify receiver did not bind in 5 s')), 5000).unref())]);
  return {
    path,
    messages,
    waitFor(key, opts = {}) {
      const match = (m: NotifyMessage) => {
        const v = m.fields[key];
        if (v === undefined) return false;
        if (opts.value === undefined) return true;
        return typeof opts.value === 'string' ? v === opts.value : opts.value.test(v);
      };
      const from = opts.from ?? 0;
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = messages.slice(from).find(match);
          if (!m) return;
          listeners.delete(check);
          clearTimeout(timer);
          resolve(m);
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`no notify message with ${key}${opts.value ? `=${String(opts.value)}` : ''} within ${opts.timeoutMs ?? 10_000} ms; got ${JSON.stringify(messages.slice(from).map((m) => m.fields))}`));
        }, opts.timeoutMs ?? 10_000);
        listeners.add(check);
        check();
      });
    },
    async close() {
      child.kill('SIGKILL');
      await exited;
      if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
    },
  };
}
