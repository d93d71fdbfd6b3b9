// The network namespaces of Docker dynos (NetnsFactory, agent/network/host-network.ts). Docker
// cannot put a container into a namespace by path (runc's linux.namespaces path, LXC's
// lxc.namespace.share.net): it only shares the namespace of another container. So each dyno
// network is held by a pause container, `slipway-pause.<netns>` (create-options.ts), whose
// namespace is named at /run/netns/<netns> with `ip netns attach <netns> <its pid>`;
// host-network.ts then puts the veth and address into it by that name, exactly as for runc and
// LXC, and the dyno's container joins it with `NetworkMode: container:<pause>`.
//
// Why a pause container (issue 12):
// - not a veth moved into the dyno's namespace after the engine started it: the dyno's command
//   would run for a moment with no network (an app that connects or resolves at boot fails
//   for no reason of its own), and the setup could only begin once the start returned;
// - not a custom OCI runtime (a `runtimes` entry in daemon.json whose binary writes the
//   namespace path into config.json and execs runc): it changes the engine's configuration (an
//   operator's file and a dockerd restart), puts a binary of ours on the engine's side, outside
//   the agent's time bounds and logs, and edits bundles behind the engine's back;
// - a pause container uses only the public API (Kubernetes' dockershim worked the same way:
//   a sandbox container per pod, its namespace wired from outside, the app containers joining
//   it), and a Docker dyno gets the same network as a runc one.
//
// It is made with NetworkDisabled: runc creates the namespace as for any container and the
// engine's networking stays out (no libnetwork sandbox, no `libnetwork-setkey` prestart hook,
// which re-executes dockerd inside runc's create). With `NetworkMode: none` alone the engine does
// both, and a pause container takes twice as long to start. The namespace is then the kernel's
// new one, as `ip netns add` makes for runc, except for two sysctls Docker opens in every
// container that PAUSE_SYSCTLS sets back. The engine then binds no hosts or resolv.conf file
// into a dyno that joins it (create-options.ts binds the stack's and the agent's).
//
// Cost, measured on this machine (Debian 12, docker.io 20.10.24, 2 cores shared with other test
// runs at a load of ~3; test/integration/agent/runtime/docker/pause.test.ts prints it):
// create + start + attach takes a median of ~170 ms of 10 (a container in the host's network
// takes ~150 ms the same way; with `NetworkMode: none` alone ~340 ms), against ~15-25 ms for
// `ip netns add`. It is on the start path: each pause container carries its dyno's hostname,
// so none can be made ahead (runc's pool). The dyno's own start is no slower than in the host's
// network. Memory: ~60 kB private to the pause process (RSS 1.5 MB: the stack's shell, shared)
// and ~2.5 MB private to its containerd shim (RSS 13 MB, the rest the shim binary's pages,
// shared by every shim): one more shim per dyno.
//
// The pause process is the stack's /bin/sh (the one binary every stack has: StackStore checks
// it) blocked in `read` on a stdin pipe nobody writes (OpenStdin): no CPU, no timer. Should it
// ever end, nothing of the dyno breaks: the namespace stays alive through its /run/netns mount
// and the dyno's processes, and reconcile removes what is left. It runs as nobody, with the
// hardening of a dyno, a read-only rootfs and tiny limits, in the drivers' cgroup parent.
//
// Ownership: the host network owns each namespace and decides when it goes (after the dyno's
// container is gone); the Docker driver never removes a pause container, and the dyno sweep
// never sees one (it goes by dyno dirs and the names `slipway-<dynoId>`).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type Docker from 'dockerode';
import type { Logger } from '../../../shared/log.js';
import { SlipwayError } from '../../../shared/errors.js';
import { hostCommands, type NetCommands } from '../../network/commands.js';
import { NETNS_DIR, type NetnsFactory, type NetworkOwner } from '../../network/host-network.js';
import { DYNO_OOM_SCORE_ADJ } from '../hardening.js';
import { hardenedHostConfig, LABEL_MANAGED, LABEL_PAUSE, pauseContainerName } from './create-options.js';
import { CREATE_TIMEOUT_MS, engineCall, inspectContainer, LIST_TIMEOUT_MS, removeContainer, START_TIMEOUT_MS } from './engine.js';
import type { StackImages } from './stack-image.js';

/** A blocked sh needs ~1.5 MB (bash on a heroku stack a few more); 16 MiB is room, not a quota. */
export const PAUSE_MEMORY_BYTES = 16 * 1024 * 1024;
/** The shell alone, plus runc's init while it starts. */
export const PAUSE_PIDS_LIMIT = 8;
/** The kernel's least cpu.shares: it never runs. */
export const PAUSE_CPU_SHARES = 2;
/** nobody: never the dyno user, so nothing of the dyno owns it. */
export const PAUSE_USER = '65534:65534';
export const PAUSE_COMMAND = ['/bin/sh', '-c', 'read x'] as const;
/** The kernel's defaults for a new namespace (what `ip netns add` gives runc and LXC dynos).
 * Docker 20.10 sets both wide open in every namespace it makes (any user may bind ports below
 * 1024 and open ICMP echo sockets); a Docker dyno must not get more than a runc one. */
export const PAUSE_SYSCTLS = { 'net.ipv4.ip_unprivileged_port_start': '1024', 'net.ipv4.ping_group_range': '1 0' } as const;

/** The shape host-network.ts gives namespaces (leases.ts checks the same): the name goes into
 * an engine name, a label and an iproute2 batch line. */
const NETNS_NAME = /^[a-z][a-z0-9]*-[0-9a-f]{8}$/;

function checkNetns(netns: string): void {
  if (!NETNS_NAME.test(netns)) throw new SlipwayError('NETWORK_FAILED', `not a dyno network namespace name: ${JSON.stringify(netns)}`);
}

/** The create body of the pause container for `netns`. Pure, like create-options.ts. */
export function buildPauseCreateOptions(netns: string, owner: Pick<NetworkOwner, 'hostname'>, o: { image: string; cgroupParent: string; seccompProfile?: string }): Docker.ContainerCreateOptions {
  return {
    Image: o.image,
    Entrypoint: [],
    Cmd: [...PAUSE_COMMAND],
    User: PAUSE_USER,
    WorkingDir: '/',
    // Docker takes a dyno's hostname from the container whose network it joins.
    Hostname: owner.hostname,
    Labels: { [LABEL_PAUSE]: netns, [LABEL_MANAGED]: 'true' },
    // runc makes the namespace, as for any container, and the engine's networking stays out:
    // no libnetwork sandbox, no `libnetwork-setkey` hook (a re-exec of dockerd inside runc's
    // create). That halves the start (see the header) and leaves the namespace as the kernel
    // makes it, as `ip netns add` does for runc and LXC.
    NetworkDisabled: true,
    Env: [],
    Tty: false,
    OpenStdin: true,
    StdinOnce: false,
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    HostConfig: {
      NetworkMode: 'none',
      Sysctls: { ...PAUSE_SYSCTLS },
      IpcMode: 'private',
      CgroupParent: o.cgroupParent,
      ReadonlyRootfs: true,
      ...hardenedHostConfig(o.seccompProfile),
      Memory: PAUSE_MEMORY_BYTES,
      MemorySwap: PAUSE_MEMORY_BYTES,
      CpuShares: PAUSE_CPU_SHARES,
      PidsLimit: PAUSE_PIDS_LIMIT,
      OomScoreAdj: DYNO_OOM_SCORE_ADJ,
      // It writes nothing; no log file to rotate.
      LogConfig: { Type: 'none', Config: {} },
    },
  };
}

/** The namespaces of the pause containers in `containers` whose name starts with `prefix`. */
export function pauseNetnsOf(containers: readonly Pick<Docker.ContainerInfo, 'Labels'>[], prefix: string): string[] {
  const out = new Set<string>();
  for (const c of containers) {
    const netns = c.Labels?.[LABEL_PAUSE];
    if (c.Labels?.[LABEL_MANAGED] === 'true' && netns && netns.startsWith(prefix) && NETNS_NAME.test(netns)) out.add(netns);
  }
  return [...out].sort();
}

export interface PauseContainersOptions {
  docker: Docker;
  /** The driver's: a pause container runs the dyno's stack image, imported once for both. */
  images: StackImages;
  cgroupParent: string;
  /** The driver's seccomp profile (seccomp/profile.ts), made on first use. */
  seccompProfile: () => string;
  /** A stack's directory by name (DockerDriverOptions.stackDir): the pause container is made
   * before the dyno's start, maybe before its stack was ever imported. */
  stackDir: ((stack: string) => string) | undefined;
  log: Logger;
  /** iproute2 (`ip netns attach|del`), bounded like the host network's own calls. */
  commands?: NetCommands;
}

export class PauseContainers implements NetnsFactory {
  private readonly cmd: NetCommands;

  constructor(private readonly o: PauseContainersOptions) {
    this.cmd = o.commands ?? hostCommands();
  }

  async create(netns: string, owner: NetworkOwner): Promise<void> {
    checkNetns(netns);
    const name = pauseContainerName(netns);
    const image = await this.image(owner.stack);
    try {
      const body = buildPauseCreateOptions(netns, owner, { image, cgroupParent: this.o.cgroupParent, seccompProfile: this.o.seccompProfile() });
      // As in driver.ts: the body in `_body`, only the name in the query.
      const { id } = await engineCall(`create ${name}`, CREATE_TIMEOUT_MS, (abortSignal) =>
        this.o.docker.createContainer({ _query: { name }, _body: body, abortSignal } as unknown as Docker.ContainerCreateOptions));
      await engineCall(`start ${name}`, START_TIMEOUT_MS, (abortSignal) => this.o.docker.getContainer(id).start({ abortSignal }));
      const info = await inspectContainer(this.o.docker, id);
      if (!info?.State.Running || !(info.State.Pid > 0)) {
        throw new SlipwayError('RUNTIME_FAILED', `Docker pause container ${name} is not running right after its start (${info ? `status ${info.State.Status}, exit ${info.State.ExitCode}` : 'gone'})`);
      }
      await this.cmd.ip([`netns attach ${netns} ${info.State.Pid}`]);
    } catch (err) {
      await this.destroy(netns).catch((e: unknown) => this.o.log.warn({ err: e, netns }, 'cleanup after a failed pause container'));
      throw err;
    }
  }

  /** The container, then the /run/netns name if host-network.ts has not removed it already. */
  async destroy(netns: string): Promise<void> {
    checkNetns(netns);
    // Both are tried; the first failure is the one reported.
    const failures: Error[] = [];
    await removeContainer(this.o.docker, pauseContainerName(netns)).catch((err: Error) => { failures.push(err); });
    if (existsSync(join(NETNS_DIR, netns))) await this.cmd.ip([`netns del ${netns}`]).catch((err: Error) => { failures.push(err); });
    if (failures[0]) throw failures[0];
  }

  /** Any state: an exited pause container holds nothing but is still one to remove. */
  async list(prefix: string): Promise<string[]> {
    const containers = await engineCall('list of pause containers', LIST_TIMEOUT_MS, (abortSignal) =>
      this.o.docker.listContainers({ all: true, filters: { label: [LABEL_PAUSE, `${LABEL_MANAGED}=true`] }, abortSignal }));
    return pauseNetnsOf(containers, prefix);
  }

  private async image(stack: string): Promise<string> {
    // Without it: a wiring bug (runtime/factory.ts), nothing says where the stack is.
    if (!this.o.stackDir) throw new SlipwayError('INTERNAL', `the Docker driver was given no stackDir: cannot make the pause container of a dyno of stack ${stack}`);
    return this.o.images.ensure(stack, this.o.stackDir(stack));
  }
}
