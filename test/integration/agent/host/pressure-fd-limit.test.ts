// The agent at its file-descriptor limit, for real: an agent process with runc dynos whose
// RLIMIT_NOFILE the test lowers with `prlimit --pid` (the agent re-reads /proc/self/limits, so
// no restart is involved): just above what it holds plus its headroom, just under, then exactly
// what it holds (EMFILE on the next open, accept, socket or pipe). What an operator would
// check: a start is admitted and comes up above the headroom, start_dyno is refused with
// AGENT_FD_LIMIT under it; at EMFILE itself the agent does not crash (a diagnostics request it cannot
// accept, a link cut under it, a dyno that dies and whose restarts cannot spawn), the running
// dynos keep their processes, and once the limit is raised the link comes back by itself
// (redials with backoff), the dead dyno is restarted, and a start succeeds.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { DEFAULT_FD_HEADROOM, SAMPLE_TTL_MS } from '../../../../agent/host/pressure.js';
import { eventually, tempDir } from '../../../helpers/host.js';
import { outcome, pressureAgent, type FixtureDyno } from './fixtures/pressure-agent.js';

const fdsOf = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;
/** RLIMIT_NOFILE bounds descriptor numbers, and a new one takes the lowest free number: with
 * a soft limit of 3 (stdio only) every new descriptor fails with EMFILE, whatever holes the
 * agent's table has (the memory sampler opens and closes cgroup files every second). */
const EMFILE_SOFT_LIMIT = 3;
const softNofile = (pid: number) => Number(/^Max open files\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'))?.[1]);
/** Only the soft limit (`N:`): the hard one stays, because dynos inherit it and runc raises
 * their own limit to `nofile` (10,000) within it; a hard limit under that fails every start
 * with "error setting rlimit type 7: operation not permitted". */
const setNofile = (pid: number, n: number) => execFileSync('prlimit', ['--pid', String(pid), `--nofile=${n}:`]);
/** One request on a connection of its own; what came back (empty when it was closed or reset). */
function freshRequest(url: string, path: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    let got = '';
    const socket = connect(Number(port), hostname);
    const done = () => { clearTimeout(timer); socket.destroy(); resolve(got); };
    const timer = setTimeout(done, 5_000);
    socket.on('connect', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: diagnostics\r\nConnection: close\r\n\r\n`));
    socket.on('data', (b: Buffer) => { got += b.toString('utf8'); });
    socket.on('error', done);
    socket.on('close', done);
  });
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const alive = (pid: number | undefined) => {
  try { process.kill(pid!, 0); return true; } catch { return false; }
};

t.test('at its descriptor limit the agent refuses with AGENT_FD_LIMIT, survives EMFILE, keeps dynos and link, and recovers when the limit is raised', async (t) => {
  const dir = await tempDir(t, 'slipway-pressure-fd-');
  const pa = await pressureAgent(t, dir, join(dir, 'state'));
  const pid = pa.agent.child.pid!;
  const originalSoft = softNofile(pid);
  await eventually('the agent to say hello', () => pa.hellos >= 1 || undefined, 20_000);
  const waitUp = (id: string) => eventually(`dyno ${id} up`, async () => (await pa.dynos()).find((d) => d.id === id && d.state === 'up'), 30_000);
  const running: FixtureDyno[] = [];
  const first = await pa.start(1);
  t.equal(outcome(first.result), 'ok', 'a dyno starts');
  running.push(await waitUp(first.spec.id));

  // Dynos cost the agent no descriptor while they run (conmon keeps their stdio and exit
  // status; measured: 26 held with 1 dyno and with 13), so the limit is brought to them
  // instead. Above the headroom a start is admitted and comes up (its own transient
  // descriptors fit); under it, it is refused.
  const held = fdsOf(pid);
  setNofile(pid, held + DEFAULT_FD_HEADROOM + 8);
  await sleep(SAMPLE_TTL_MS + 200); // the admission's sample is re-read
  const near = await pa.start(2);
  t.equal(outcome(near.result), 'ok', `with ${DEFAULT_FD_HEADROOM + 8} descriptors left a start is admitted`);
  running.push(await waitUp(near.spec.id));
  // A few under the headroom: the agent's own count may differ from this one by a descriptor
  // or two opened or closed in between (the memory sampler's cgroup files).
  const limit = fdsOf(pid) + DEFAULT_FD_HEADROOM - 4;
  setNofile(pid, limit);
  await sleep(SAMPLE_TTL_MS + 200);
  const refused = await pa.start(3);
  t.equal(outcome(refused.result), 'AGENT_FD_LIMIT', `with ${DEFAULT_FD_HEADROOM - 4} left it is refused with AGENT_FD_LIMIT`);
  t.match(refused.result.ok ? '' : refused.result.error.message, new RegExp(`of ${limit} file descriptors open, fewer than ${DEFAULT_FD_HEADROOM} left`));
  await eventually('the coordinator to hear that the host takes no dynos', () => pa.lastAccepting() === false || undefined, 10_000);

  // At the limit itself: the next descriptor fails with EMFILE.
  setNofile(pid, EMFILE_SOFT_LIMIT);
  await sleep(SAMPLE_TTL_MS + 200);
  const atLimit = await pa.start(90);
  t.equal(outcome(atLimit.result), 'AGENT_FD_LIMIT', 'at EMFILE the start is refused too (over the open link)');
  // A new connection (the keep-alive ones of earlier requests would be reused): its accept fails.
  const diag = await freshRequest(pa.diagnosticsUrl, '/healthz');
  t.notMatch(diag, /^HTTP\/1\.1 200/, `a diagnostics request on a new connection is not served (${diag.split('\r\n')[0] || 'closed'})`);
  t.equal(pa.agent.child.exitCode, null, 'the agent survived the accept it could not take');
  // A dyno that dies now must be restarted, and its restart spawns (conmon, runc, ip): they
  // fail with EMFILE until the limit is raised, and the crash loop goes on meanwhile.
  const victim = running.pop()!;
  process.kill(victim.pid!, 'SIGKILL');
  pa.cutLink();
  await sleep(3_000);
  t.equal(pa.agent.child.exitCode, null, 'the agent survived its link being cut and its redials failing with EMFILE');
  t.equal(pa.hellos, 1, 'no new link while no socket can be opened');
  t.ok(pa.agent.lines.some((l) => l.component === 'link' && /EMFILE/.test(JSON.stringify(l))), 'the failed redial names EMFILE in the log');
  for (const d of running) t.ok(alive(d.pid), `dyno ${d.id} kept its process`);
  const failedRestart = await eventually('a restart of the killed dyno to fail for want of descriptors', () => pa.agent.lines.find((l) => l.dynoId === victim.id && l.msg === 'dyno failed to start' && /EMFILE/.test(JSON.stringify(l.err))), 20_000);
  t.ok(failedRestart, 'its restart failed with EMFILE, and the agent went on');
  t.equal(pa.agent.child.exitCode, null);

  setNofile(pid, originalSoft);
  await eventually('the agent to redial once descriptors are back', () => pa.hellos >= 2 || undefined, 60_000);
  await eventually('the host to take dynos again by itself', () => pa.lastAccepting() === true || undefined, 15_000);
  const restarted = await eventually('the killed dyno restarted in a new process', async () => (await pa.dynos()).find((d) => d.id === victim.id && d.state === 'up' && d.pid !== victim.pid), 60_000);
  t.ok(restarted, `the dyno killed at EMFILE is up again (pid ${victim.pid} -> ${restarted.pid})`);
  const after = await pa.start(99);
  t.equal(outcome(after.result), 'ok', 'a start succeeds once the limit was raised');
  await waitUp(after.spec.id);
  const now = await pa.dynos();
  for (const d of running) t.same(now.find((x) => x.id === d.id)?.pid, d.pid, `dyno ${d.id} ran through it in the same process`);
  t.ok(pa.agent.lines.some((l) => l.msg === 'host takes new work again: the state dir and file descriptors have room'), 'the recovery is logged');
});
