import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dynoArgs, dynoEnv, isWebDyno } from '../../../../agent/dynos/entrypoint.js';
import type { DynoSpec } from '../../../../shared/protocol.js';
// The counting app of the conformance suite's stop cases, run here by each host shell.
import { COUNT_TERM } from '../../../integration/agent/runtime/fixtures/conformance-stop.js';

const spec: DynoSpec = {
  id: 'a-web-1-x', app: 'app1', type: 'web', name: 'web.1', command: 'echo $GREETING $PORT',
  size: { name: 'standard-1x', memoryMb: 512, cpuShares: 1024, pidsLimit: 256 },
  env: { GREETING: 'hi', DYNO: 'spoofed', PATH: '/custom' }, slug: { url: 'http://x/s.tgz', sha256: 'a'.repeat(64) }, stack: 'busybox',
};

t.test('platform variables win over config vars; config vars stay', async (t) => {
  const env = dynoEnv(spec, 20001);
  t.ok(env.includes('DYNO=web.1'));
  t.notOk(env.includes('DYNO=spoofed'));
  t.ok(env.includes('PORT=20001'));
  t.ok(env.includes('HOME=/app'));
  t.ok(env.includes('GREETING=hi'));
  t.ok(env.includes('PATH=/custom'), 'an app may set its own PATH');
});

t.test('non-web dynos get no PORT', async (t) => {
  t.notOk(dynoEnv({ env: spec.env, name: 'worker.1' }, undefined).some((e) => e.startsWith('PORT=')));
  t.equal(isWebDyno({ type: 'worker' }), false);
});

// The prelude runs with the host's shells against a fake /app: its paths are absolute, so /app
// is rewritten to a temp dir in the args only. Stacks may have any of these shells; busybox
// runs as ash when called as `sh` (as in the busybox stack).
const root = mkdtempSync(join(tmpdir(), 'slipway-entry-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
mkdirSync(join(root, 'busybox'));
symlinkSync('/usr/bin/busybox', join(root, 'busybox', 'sh'));
const SHELLS = [
  { name: 'busybox ash', path: join(root, 'busybox', 'sh'), present: existsSync('/usr/bin/busybox'), execsSimpleCommand: true },
  { name: 'dash', path: '/usr/bin/dash', present: existsSync('/usr/bin/dash'), execsSimpleCommand: false },
  { name: 'bash', path: '/usr/bin/bash', present: existsSync('/usr/bin/bash'), execsSimpleCommand: true },
];

let apps = 0;
/** A fake /app: the given files, and bin/count-term for `shell`. */
function appDir(shell: string, files: Record<string, string> = {}): string {
  const dir = join(root, `app${++apps}`);
  mkdirSync(join(dir, 'bin'), { recursive: true });
  writeFileSync(join(dir, 'bin', 'count-term'), COUNT_TERM.replace('#!/bin/sh', `#!${shell}`), { mode: 0o755 });
  for (const [rel, body] of Object.entries(files)) {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), body);
  }
  return dir;
}

/** Runs a dyno's args in a process group of its own. Once `readyLines` lines ending in "ready"
 * are out, sends SIGTERM once to every process of the group, as a driver's stop does to every
 * process of the dyno. Resolves when the dyno has exited and every process let go of its output. */
function runDyno(t: Test, shell: string, dir: string, command: string, readyLines = 0): Promise<{ code: number | null; out: string }> {
  const args = dynoArgs(command, shell).map((a) => a.replaceAll('/app/', `${dir}/`));
  const child = spawn(args[0]!, args.slice(1), { detached: true, stdio: ['ignore', 'pipe', 'inherit'], env: { GREETING: 'hi', DYNO: 'web.1', PATH: `${dir}/bin:/bin:/usr/bin` } });
  t.teardown(() => { try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* all gone */ } });
  let out = '';
  let signalled = readyLines === 0;
  child.stdout.on('data', (b: Buffer) => {
    out += b.toString();
    if (!signalled && out.split('\n').filter((l) => l.endsWith(' ready') || l === 'ready').length >= readyLines) {
      signalled = true;
      try { process.kill(-child.pid!, 'SIGTERM'); } catch { /* all gone already */ }
    }
  });
  let code: number | null = null;
  child.on('exit', (c, sig) => { code = c ?? (sig ? -1 : null); });
  return new Promise((resolve) => child.on('close', () => resolve({ code, out })));
}

const times = (out: string, line: string) => out.split('\n').filter((l) => l === line).length;

for (const sh of SHELLS) {
  t.test(`${sh.name}: the prelude`, { skip: sh.present ? false : `${sh.name} is not installed` }, async (t) => {
    t.test('sources .profile.d and .profile, which see config vars, then runs the command', async (t) => {
      const dir = appDir(sh.path, { '.profile.d/a.sh': 'export FROM_PROFILE_D="pd:$GREETING"\n', '.profile': 'export FROM_PROFILE="p:$FROM_PROFILE_D"\n' });
      const r = await runDyno(t, sh.path, dir, 'echo "$FROM_PROFILE|$DYNO"; exit 3');
      t.equal(r.out.trim(), 'p:pd:hi|web.1');
      t.equal(r.code, 3, "pid 1 exits with the command's status");
    });

    t.test("a status above 128 of the command's own stands", async (t) => {
      t.equal((await runDyno(t, sh.path, appDir(sh.path), 'exit 200')).code, 200, 'an exit status of 200');
      t.equal((await runDyno(t, sh.path, appDir(sh.path), 'kill -KILL $$')).code, 137, 'a command killed by a signal: 128+9');
    });

    t.test('on SIGTERM to every process, each gets exactly one and the dyno exits with the status of the command', async (t) => {
      const simple = await runDyno(t, sh.path, appDir(sh.path), 'count-term app app-child', 2);
      t.equal(times(simple.out, 'app got SIGTERM'), 1, 'the app got SIGTERM exactly once', { output: simple.out });
      t.equal(times(simple.out, 'app-child got SIGTERM'), 1, "the app's child got SIGTERM exactly once");
      t.equal(times(simple.out, 'app exits'), 1, 'the app lingered after it and exited on its own');
      if (sh.execsSimpleCommand) t.equal(simple.code, 0, "the app's own status");
      else t.equal(simple.code, 143, "dash keeps its -c shell, which dies of its SIGTERM (entrypoint.ts: compound commands)");
      const compound = await runDyno(t, sh.path, appDir(sh.path), "trap 'echo sh got SIGTERM' TERM; echo sh ready; count-term a & count-term b & wait; wait", 3);
      for (const c of ['sh', 'a', 'b']) t.equal(times(compound.out, `${c} got SIGTERM`), 1, `${c} got SIGTERM exactly once`, { output: compound.out });
      t.equal(compound.code, 0, "the command's own status");
    });

    t.test("an app's own status on SIGTERM is the dyno's, also when it exits at once", async (t) => {
      // Five runs: bash 5.2 lost this status in about two runs in three when the prelude ran
      // the command in the background and its `wait` was interrupted by the trap.
      for (let i = 0; i < 5; i++) {
        // Short waits in a loop: busybox ash's `wait` can miss a trapped signal that arrives
        // just before it blocks, as a SIGTERM sent on "ready" does now and then.
        const r = await runDyno(t, sh.path, appDir(sh.path), "trap 'exit 5' TERM; echo ready; while :; do sleep 1 & wait $!; done", 1);
        t.equal(r.code, 5, `run ${i + 1}`);
      }
    });

    t.test('the command does not start with SIGINT ignored, as an asynchronous list would', async (t) => {
      const r = await runDyno(t, sh.path, appDir(sh.path), 'grep SigIgn /proc/self/status');
      const ignored = BigInt(`0x${/SigIgn:\s*([0-9a-f]+)/.exec(r.out)?.[1] ?? 'ffff'}`);
      t.equal(ignored & 2n, 0n, `SIGINT is not ignored (SigIgn ${ignored.toString(16)})`);
    });

    t.test('an app without a SIGTERM handler dies of it', async (t) => {
      const r = await runDyno(t, sh.path, appDir(sh.path), 'echo ready; exec sleep 1000', 1);
      t.equal(r.code, 143, '128+15');
    });

    t.test('a SIGTERM while the profile is sourced: the command never starts, the dyno exits 143', async (t) => {
      // The subshell is forked before it says so: the SIGTERM reaches it, or the sleep it became.
      const dir = appDir(sh.path, { '.profile.d/slow.sh': '(echo profile ready; exec sleep 1000)\n' });
      const r = await runDyno(t, sh.path, dir, 'echo COMMAND-RAN', 1);
      t.notMatch(r.out, /COMMAND-RAN/);
      t.equal(r.code, 143);
    });
  });
}
