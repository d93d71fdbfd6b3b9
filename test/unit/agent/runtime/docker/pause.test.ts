// The pause container of a Docker dyno's network (pause.ts): its create body field by field,
// which containers count as pause containers, and, against a fake engine and fake iproute2,
// the order of the calls and that a failed attach leaves no container behind.
import t from 'tap';
import type Docker from 'dockerode';
import { buildPauseCreateOptions, PAUSE_COMMAND, PAUSE_MEMORY_BYTES, PAUSE_PIDS_LIMIT, PauseContainers, pauseNetnsOf } from '../../../../../agent/runtime/docker/pause.js';
import { LABEL_MANAGED, LABEL_PAUSE } from '../../../../../agent/runtime/docker/create-options.js';
import type { StackImages } from '../../../../../agent/runtime/docker/stack-image.js';
import type { NetCommands } from '../../../../../agent/network/commands.js';
import { DYNO_OOM_SCORE_ADJ, MASKED_PATHS, READONLY_PATHS } from '../../../../../agent/runtime/hardening.js';
import { SlipwayError } from '../../../../../shared/errors.js';
import { quietLogger } from '../../../../helpers/host.js';

const NETNS = 'slipway0-0123abcd';
const input = { image: 'slipway-stack/heroku-24:0123456789abcdef', cgroupParent: '/slipway', seccompProfile: '{"defaultAction":"SCMP_ACT_ERRNO"}' };
const body = buildPauseCreateOptions(NETNS, { hostname: 'app1-web-1-abc' }, input);
const host = body.HostConfig!;

t.test('a namespace with only lo, the dyno hostname, labelled with the namespace it holds', async (t) => {
  t.equal(host.NetworkMode, 'none');
  t.equal(body.NetworkDisabled, true, "runc's own new namespace, without the engine's networking");
  t.equal(body.Hostname, 'app1-web-1-abc', 'Docker gives the dyno joining it this hostname');
  t.same(body.Labels, { [LABEL_PAUSE]: NETNS, [LABEL_MANAGED]: 'true' });
  t.equal(body.Image, input.image, "the dyno's stack image");
  t.same(host.Sysctls, { 'net.ipv4.ip_unprivileged_port_start': '1024', 'net.ipv4.ping_group_range': '1 0' }, "the kernel's defaults, not Docker's open ones: no more than a runc dyno gets");
});

t.test('the hardening of a dyno, a read-only rootfs, and tiny limits', async (t) => {
  t.equal(body.User, '65534:65534', 'nobody, not root and not the dyno user');
  t.same(host.CapDrop, ['ALL']);
  t.equal(host.CapAdd, undefined, 'no capability at all');
  t.same(host.SecurityOpt, ['no-new-privileges', `seccomp=${input.seccompProfile}`]);
  t.same(host.MaskedPaths, [...MASKED_PATHS]);
  t.same(host.ReadonlyPaths, [...READONLY_PATHS]);
  t.equal(host.ReadonlyRootfs, true);
  t.equal(host.Privileged, false);
  t.equal(host.Memory, PAUSE_MEMORY_BYTES);
  t.equal(host.Memory, 16 * 1024 * 1024);
  t.equal(host.MemorySwap, PAUSE_MEMORY_BYTES, 'no swap');
  t.equal(host.PidsLimit, PAUSE_PIDS_LIMIT);
  t.equal(host.OomScoreAdj, DYNO_OOM_SCORE_ADJ);
  t.equal(host.CgroupParent, '/slipway', "the drivers' cgroup parent");
  t.same(host.RestartPolicy, { Name: 'no', MaximumRetryCount: 0 }, 'the engine never restarts it');
  t.same(host.LogConfig, { Type: 'none', Config: {} });
  t.same(buildPauseCreateOptions(NETNS, { hostname: 'h' }, { image: 'i', cgroupParent: '/p' }).HostConfig!.SecurityOpt, ['no-new-privileges'], "no profile given: the engine's default");
});

t.test('its process is the stack shell blocked on a stdin nobody writes', async (t) => {
  t.same(body.Entrypoint, []);
  t.same(body.Cmd, [...PAUSE_COMMAND]);
  t.same(body.Cmd, ['/bin/sh', '-c', 'read x']);
  t.equal(body.OpenStdin, true, 'stdin is a pipe that stays open');
  t.equal(body.StdinOnce, false);
  t.equal(body.AttachStdin, false);
  t.equal(body.Tty, false);
});

t.test('pause containers of a bridge are told by their labels', async (t) => {
  const c = (labels: Record<string, string>) => ({ Labels: labels });
  const listed = [
    c({ [LABEL_PAUSE]: 'slipway0-0000000b', [LABEL_MANAGED]: 'true' }),
    c({ [LABEL_PAUSE]: 'slipway0-0000000a', [LABEL_MANAGED]: 'true' }),
    c({ [LABEL_PAUSE]: 'slipway0-0000000a', [LABEL_MANAGED]: 'true' }),
    c({ [LABEL_PAUSE]: 'other1-0000000c', [LABEL_MANAGED]: 'true' }),
    c({ [LABEL_PAUSE]: 'slipway0-0000000d' }),
    c({ [LABEL_PAUSE]: 'slipway0-$(reboot)', [LABEL_MANAGED]: 'true' }),
    c({ 'slipway.dyno': 'app1-web-1', [LABEL_MANAGED]: 'true' }),
  ];
  t.same(pauseNetnsOf(listed, 'slipway0-'), ['slipway0-0000000a', 'slipway0-0000000b'], "this bridge's, once each, only slipway's, only well-formed names");
  t.same(pauseNetnsOf(listed, 'other1-'), ['other1-0000000c']);
  t.same(pauseNetnsOf([], 'slipway0-'), []);
});

/** A fake engine that records its calls; the container's state after start is `state`. */
function fakeEngine(state: { Running: boolean; Pid: number; Status: string }) {
  const calls: string[] = [];
  const container = (id: string) => ({
    start: async () => { calls.push(`start ${id}`); },
    inspect: async () => { calls.push(`inspect ${id}`); return { Id: id, State: { ...state, ExitCode: 0 } }; },
    remove: async (o: { force?: boolean }) => { calls.push(`remove ${id}${o.force ? ' force' : ''}`); },
  });
  const docker = {
    createContainer: async (o: { _query: { name: string }; _body: Docker.ContainerCreateOptions }) => { calls.push(`create ${o._query.name} ${o._body.HostConfig?.NetworkMode}`); return { id: 'c0ffee' }; },
    getContainer: container,
    listContainers: async (o: Docker.ContainerListOptions) => {
      calls.push(`list ${JSON.stringify(o.filters)} all=${o.all}`);
      return [{ Labels: { [LABEL_PAUSE]: NETNS, [LABEL_MANAGED]: 'true' } }];
    },
  } as unknown as Docker;
  return { docker, calls };
}

function fakeIp(fail?: RegExp): { commands: NetCommands; lines: string[] } {
  const lines: string[] = [];
  const commands = {
    ip: async (l: readonly string[]) => {
      lines.push(...l);
      if (fail && l.some((x) => fail.test(x))) throw new SlipwayError('RUNTIME_FAILED', 'ip: boom');
      return { code: 0, stdout: '', stderr: '' };
    },
  } as unknown as NetCommands;
  return { commands, lines };
}

const images = { ensure: async (stack: string, dir: string) => `img-of-${stack}-at-${dir}` } as unknown as StackImages;
const factory = (docker: Docker, commands: NetCommands, o: { stackDir?: (s: string) => string } = { stackDir: (s) => `/stacks/${s}` }) =>
  new PauseContainers({ docker, images, cgroupParent: '/slipway', seccompProfile: () => '{}', stackDir: o.stackDir, log: quietLogger(), commands });

t.test('create: image, create, start, inspect, then the namespace named after it by pid', async (t) => {
  const { docker, calls } = fakeEngine({ Running: true, Pid: 4242, Status: 'running' });
  const ip = fakeIp();
  await factory(docker, ip.commands).create(NETNS, { stack: 'heroku-24', hostname: 'web-1' });
  t.same(calls, [`create slipway-pause.${NETNS} none`, 'start c0ffee', 'inspect c0ffee']);
  t.same(ip.lines, [`netns attach ${NETNS} 4242`]);
});

t.test('a failed attach, or a pause process that is already gone, leaves no container', async (t) => {
  const a = fakeEngine({ Running: true, Pid: 4242, Status: 'running' });
  await t.rejects(factory(a.docker, fakeIp(/attach/).commands).create(NETNS, { stack: 's', hostname: 'h' }), { message: /boom/ });
  t.equal(a.calls.at(-1), `remove slipway-pause.${NETNS} force`);
  const b = fakeEngine({ Running: false, Pid: 0, Status: 'exited' });
  const ip = fakeIp();
  await t.rejects(factory(b.docker, ip.commands).create(NETNS, { stack: 's', hostname: 'h' }), { code: 'RUNTIME_FAILED', message: /not running right after its start \(status exited/ });
  t.equal(b.calls.at(-1), `remove slipway-pause.${NETNS} force`);
  t.same(ip.lines, [], 'nothing to attach');
});

t.test('names the host network does not make, and a driver without stackDir, are refused before any call', async (t) => {
  const { docker, calls } = fakeEngine({ Running: true, Pid: 1, Status: 'running' });
  const ip = fakeIp();
  await t.rejects(factory(docker, ip.commands).create('x; reboot', { stack: 's', hostname: 'h' }), { code: 'NETWORK_FAILED' });
  await t.rejects(factory(docker, ip.commands).destroy('../etc'), { code: 'NETWORK_FAILED' });
  await t.rejects(factory(docker, ip.commands, {}).create(NETNS, { stack: 's', hostname: 'h' }), { code: 'INTERNAL', message: /no stackDir/ });
  t.same(calls, []);
  t.same(ip.lines, []);
});

t.test('destroy removes the container by name (its namespace name is gone already); list asks for every state', async (t) => {
  const { docker, calls } = fakeEngine({ Running: true, Pid: 1, Status: 'running' });
  const ip = fakeIp();
  const f = factory(docker, ip.commands);
  await f.destroy(NETNS);
  t.same(calls, [`remove slipway-pause.${NETNS} force`]);
  t.same(ip.lines, [], `no /run/netns/${NETNS} here: nothing to unmount`);
  t.same(await f.list('slipway0-'), [NETNS]);
  t.same(await f.list('other-'), []);
  t.equal(calls.at(-1), `list ${JSON.stringify({ label: [LABEL_PAUSE, `${LABEL_MANAGED}=true`] })} all=true`);
});
