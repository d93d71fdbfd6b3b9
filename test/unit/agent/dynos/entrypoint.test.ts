import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dynoArgs, dynoEnv, isWebDyno } from '../../../../agent/dynos/entrypoint.js';
import type { DynoSpec } from '../../../../shared/protocol.js';

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

t.test('the prelude sources .profile.d and .profile, which see config vars, then runs the command', async (t) => {
  // Run the real entrypoint with the host's sh against a fake /app: the prelude's paths are absolute,
  // so point them at a temp dir by rewriting /app in the script only.
  const dir = mkdtempSync(join(tmpdir(), 'slipway-entry-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, '.profile.d'));
  writeFileSync(join(dir, '.profile.d', 'a.sh'), 'export FROM_PROFILE_D="pd:$GREETING"\n');
  writeFileSync(join(dir, '.profile'), 'export FROM_PROFILE="p:$FROM_PROFILE_D"\n');
  const args = dynoArgs('echo "$FROM_PROFILE|$DYNO"; exit 3', '/bin/sh').map((a) => a.replaceAll('/app/', `${dir}/`));
  let out = '';
  let code = 0;
  try {
    out = execFileSync(args[0]!, args.slice(1), { env: { GREETING: 'hi', DYNO: 'web.1', PATH: '/bin:/usr/bin' }, encoding: 'utf8' });
  } catch (err: any) {
    out = err.stdout;
    code = err.status;
  }
  t.equal(out.trim(), 'p:pd:hi|web.1');
  t.equal(code, 3, "pid 1 exits with the command's status");
});
