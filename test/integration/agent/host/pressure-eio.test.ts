// A failing state dir, for real: the agent process's state dir is an ext4 on a loop device whose
// writes the test makes fail with EIO (fixtures/flaky-disk.mjs, a FUSE file under the loop
// device: this kernel has no device-mapper, so no dm-error or dm-flakey). A web dyno runs in a
// runc container; then every write to the disk fails, while statfs still shows plenty free.
// What an operator would check: the running dyno keeps its process and still serves, the
// coordinator link is never closed, the host reports `accepting: false` and a new start_dyno
// is refused with STATE_DIR_FAILING (the agent's own probe write found the EIO: nothing else
// had to write first); once writes work again the host says `accepting: true` by itself and a
// new dyno starts, with no agent restart.
import t from 'tap';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { PROBE_INTERVAL_MS, PROBE_RETRY_MAX_MS } from '../../../../agent/host/pressure.js';
import { eventually, tempDir } from '../../../helpers/host.js';
import { http } from '../../../helpers/http.js';
import { outcome, pressureAgent } from './fixtures/pressure-agent.js';
import { mountFlakyExt4 } from './fixtures/mounts.js';

t.test('state dir failing (EIO): running dynos and the link stay, new dynos are refused with STATE_DIR_FAILING until writes work again', async (t) => {
  const dir = await tempDir(t, 'slipway-pressure-eio-');
  const stateDir = join(dir, 'state');
  mkdirSync(stateDir);
  const disk = await mountFlakyExt4(t, dir, stateDir, 512);
  const pa = await pressureAgent(t, dir, stateDir);
  await eventually('the agent to say hello', () => pa.hellos >= 1 || undefined, 20_000);

  const first = await pa.start(1);
  t.equal(outcome(first.result), 'ok', 'a dyno starts on a healthy disk');
  const up = await eventually('the first dyno up', async () => (await pa.dynos()).find((d) => d.id === first.spec.id && d.state === 'up'), 30_000);
  const serves = async () => (await http('GET', `http://${up.endpoint?.host}:${up.endpoint?.port}/index.html`)).body;
  t.equal(await serves(), 'hello\n', 'and serves');

  disk.failWrites();
  // Nothing else writes meanwhile: the agent's periodic probe is what finds it.
  await eventually('the host to report that it takes no new dynos', async () => ((await pa.status()).capacity.accepting === false) || undefined, PROBE_INTERVAL_MS + 5_000);
  await eventually('the coordinator to hear it', () => pa.lastAccepting() === false || undefined, 5_000);
  const second = await pa.start(2);
  t.equal(outcome(second.result), 'STATE_DIR_FAILING', 'a new dyno is refused with STATE_DIR_FAILING');
  t.match(second.result.ok ? '' : second.result.error.message, /EIO/, 'naming the EIO');
  t.equal(second.result.ok ? undefined : second.result.error.retryable, true, 'retryable: the coordinator places it elsewhere');

  await new Promise((r) => setTimeout(r, 3_000));
  t.equal(pa.agent.child.exitCode, null, 'the agent runs on');
  const during = (await pa.dynos()).find((d) => d.id === first.spec.id);
  t.same({ state: during?.state, pid: during?.pid }, { state: 'up', pid: up.pid }, 'the running dyno kept its process');
  t.equal(await serves(), 'hello\n', 'and still serves');
  t.equal((await pa.status()).link.state, 'ready', 'the link is up');
  t.same({ hellos: pa.hellos, disconnects: pa.disconnects }, { hellos: 1, disconnects: 0 }, 'and was never closed');
  t.notOk((await pa.dynos()).some((d) => d.id === second.spec.id), 'nothing of the refused dyno is on the host');

  disk.healWrites();
  await eventually('the host to take dynos again by itself', async () => ((await pa.status()).capacity.accepting === true) || undefined, PROBE_RETRY_MAX_MS + 5_000);
  await eventually('the coordinator to hear it', () => pa.lastAccepting() === true || undefined, 5_000);
  const third = await pa.start(3);
  t.equal(outcome(third.result), 'ok', 'a new dyno is admitted once writes work again');
  await eventually('the new dyno up', async () => (await pa.dynos()).find((d) => d.id === third.spec.id && d.state === 'up'), 30_000);
  const after = (await pa.dynos()).find((d) => d.id === first.spec.id);
  t.same({ state: after?.state, pid: after?.pid }, { state: 'up', pid: up.pid }, 'the first dyno ran through all of it');
  t.same({ hellos: pa.hellos, disconnects: pa.disconnects }, { hellos: 1, disconnects: 0 }, 'on the same link');
  t.ok(pa.agent.lines.some((l) => l.msg?.toString().startsWith('host refuses new work') && l.code === 'STATE_DIR_FAILING'), 'the refusal was logged with its code');
});
