// Wires the agent's components in a visible order and starts them. Dependencies are passed
// through constructors; nothing here is a module-level singleton. Each component owns its
// part: the manager the dynos, AgentLink (link/agent-link.ts) everything sent to the
// coordinator; this module only builds them and connects the manager's transitions to the link.
import { rendezvousDialer } from './link/rendezvous-dial.js';
import { attachFeatures } from './dynos/attach-hook.js';
import { statSync } from 'node:fs';
import { mkdir, readFile, writeFile, chmod } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { AgentIdentity, Capacity } from '../shared/protocol.js';
import { placementZone, type AgentConfig } from './config/resolve.js';
import type { Logger } from '../shared/log.js';
import { createSlugStore } from './slugs/factory.js';
import { StackStore } from './stacks/stacks.js';
import { createDriver, driverCache } from './runtime/factory.js';
import { PortAllocator } from './dynos/ports.js';
import { DynoManager } from './dynos/manager.js';
import { DynoRecords } from './dynos/dyno-records.js';
import { LogShipper } from './dynos/log-shipper.js';
import { memoryWatchSettings } from './dynos/memory-watch-hook.js';
import { tailLog } from './dynos/log-tail.js';
import { ExitRecords } from './dynos/exit-records.js';
import { DecisionLog } from './diagnostics/decisions.js';
import { realClock } from './lib/clock.js';
import { buildCapacity, readHostMemory, allocatableBytes } from './host/capacity.js';
import { AgentLink } from './link/agent-link.js';
import { createDiagnosticsServer, listenDiagnostics, type DiagnosticsTarget } from './diagnostics/server.js';
import { HostNetwork } from './network/host-network.js';
// EC2 (issue 13, item 5): IMDSv2 identity and the signals that the host is going away.
import { detectEc2, instanceNaming } from './host/ec2/identity.js';
import { HostSignals } from './host/ec2/host-signals.js';
import { errnoCodeOf, HostPressure, type OngoingFailure } from './host/pressure.js';
import type { JournalStatus } from './link/journal-writer.js';
import type { SystemdNotifier } from './host/systemd-notify.js';
import { Watchdog, serviceStatusText } from './host/watchdog.js';
import { AgentMetrics } from './metrics/agent-metrics.js';
import { registerDynoCollector } from './metrics/dyno-collector.js';
import { registerAgentCollector } from './metrics/agent-collector.js';

/** How often queued log lines are sent to the coordinator. */
const LOG_SHIP_MS = 1000;

/** While re-adoption runs, systemd's start timeout is pushed this far ahead, every
 * EXTEND_EVERY_MS: a host with hundreds of dynos to take back (each a runtime call of 50-500 ms)
 * must not be killed by TimeoutStartSec halfway, and a start that stops making progress (the
 * event loop stalled) stops extending and is still bounded. */
const EXTEND_TIMEOUT_MS = 30_000;
const EXTEND_EVERY_MS = 10_000;

/** Keep in step with package.json and agent/main.ts. */
export const AGENT_VERSION = '0.1.0';

export interface RunningAgent {
  manager: DynoManager;
  link: AgentLink;
  /** `http://127.0.0.1:7701`, or `unix:/run/slipway/diagnostics.sock` on a unix socket. */
  diagnosticsUrl: string;
  diagnosticsToken: string;
  /** Closes the link and the diagnostics server. Dynos keep running unless stopDynos is set. */
  close(options?: { stopDynos?: boolean }): Promise<void>;
}

async function diagnosticsToken(file: string): Promise<string> {
  try {
    const t = (await readFile(file, 'utf8')).trim();
    if (t) return t;
  } catch { /* created below */ }
  const t = randomBytes(24).toString('base64url');
  await writeFile(file, t + '\n', { mode: 0o600 });
  await chmod(file, 0o600);
  return t;
}

export interface StartOptions {
  /** systemd's notify socket (Type=notify): READY, STATUS, EXTEND_TIMEOUT_USEC, WATCHDOG. */
  systemd?: { notifier: SystemdNotifier; watchdogUsec?: number };
}

export async function startAgent(config: AgentConfig, log: Logger, options: StartOptions = {}): Promise<RunningAgent> {
  const dirs = { slugs: join(config.stateDir, 'slugs'), stacks: join(config.stateDir, 'stacks'), dynos: join(config.stateDir, 'dynos'), agent: join(config.stateDir, 'agent') };
  await Promise.all(Object.values(dirs).map((d) => mkdir(d, { recursive: true, mode: 0o711 })));

  // 1. Host: memory totals fix allocatable for the life of the process.
  const memory = await readHostMemory();
  const reservedBytes = config.reservedMemoryMb * 1024 * 1024;
  const allocatable = allocatableBytes(memory.totalBytes, reservedBytes);
  // EC2 (host/ec2/): who the instance is, before anything names the agent or its address. The
  // agent id defaults to the instance id, the dynos' address to its private IPv4. `auto` off
  // EC2 costs no packet (DMI says so) or one probe bounded at 500 ms, and never fails the start.
  const ec2 = config.ec2 ? await detectEc2(config.ec2, { log: log.child({ component: 'ec2' }) }) : undefined;
  const { agentId, address: hostAddress } = instanceNaming(config.ec2 ?? { agentIdSet: true, addressSet: true }, ec2?.identity, config);

  // 2. Stores and runtime.
  // Prometheus metrics (metrics/): counted where things happen, the rest read at scrape time.
  const metrics = new AgentMetrics();
  // Evictions are decisions too; `decisions` (below) exists before any ensure() can evict.
  const slugs = createSlugStore(config.slugs, log.child({ component: 'slugs' }), { observer: metrics.slugObserver(), decisions: { record: (d) => decisions.record(d) } });
  await slugs.init();
  const stacks = new StackStore(dirs.stacks);
  const driverOptions = {
    cgroupParent: config.cgroupParent, log: log.child({ component: 'runtime' }), stackDir: (name: string) => stacks.resolve(name).dir,
    ...(config.dockerSocket ? { dockerSocket: config.dockerSocket } : {}),
  };
  const driver = await createDriver(config.runtime, driverOptions);
  // Each dyno's own network namespace: the bridge, the nftables table and resolv.conf are
  // (re)applied now, before re-adoption claims the networks of the dynos it takes over.
  // One port allocator for the dynos and the pool, whose ready namespaces hold a routed port.
  const ports = new PortAllocator(config.portRange[0], config.portRange[1]);
  const network = new HostNetwork({
    ports,
    ...config.network, dir: join(config.stateDir, 'network'), log: log.child({ component: 'network' }),
    ...(config.network.dns ? { dns: config.network.dns } : {}),
    ...(driver.netnsFactory ? { netnsFactory: driver.netnsFactory() } : {}),
  });
  await network.init();
  // A router reaches dynos at a host address and their host port (DNAT). A loopback address
  // cannot be DNATed into a namespace without route_localnet, which is never turned on, so a
  // host configured (or left) with 127.0.0.1 advertises the bridge's address, which the host
  // itself (a router on this host: the demo) reaches.
  const address = /^127\./.test(hostAddress) || hostAddress === 'localhost' ? network.gateway : hostAddress;

  // The host's disk and descriptors (host/pressure.ts): while the state dir is short of room,
  // failing, or the agent near its descriptor limit, new dynos and slug prefetches are refused
  // with a code and the capacity report says `accepting: false` (so that the coordinator places
  // elsewhere); what runs is untouched, and the refusal ends by itself. Started once the link
  // exists: a change of verdict sends a capacity report at once.
  const pressure: HostPressure = new HostPressure({
    stateDir: config.stateDir, probeFile: join(dirs.agent, 'write-probe'),
    floorBytes: config.stateDirFloorMb * 1024 * 1024, fdHeadroom: config.fdHeadroom,
    log: log.child({ component: 'pressure' }),
    // The journal writer retries its own failures; a streak of them is the disk's too.
    sources: [(): OngoingFailure | undefined => {
      const j: JournalStatus | null = link.status().journal;
      const code = errnoCodeOf(j?.lastError);
      return j && !j.ok && code && j.failingSince ? { where: 'journal', code, message: j.lastError ?? '', since: j.failingSince } : undefined;
    }],
    onChange: () => link.reportCapacitySoon(),
  });

  // 3. Dynos, their records (retried through a disk outage), and their logs (shipped over the
  // link below, in batches, best effort).
  const records = new DynoRecords(join(dirs.agent, 'dynos'), { onWriteError: (err) => pressure.noteWriteFailure('dyno-record', err), log: log.child({ component: 'dynos' }) });
  const logs = new LogShipper();
  logs.start();
  // The agent's reasons (diagnostics/decisions.ts) and the record of every dyno exit
  // (dynos/exit-records.ts), in memory, for `GET /v1/events` and `GET /v1/dynos/:id/exits`.
  const decisions = new DecisionLog(realClock);
  const exits = new ExitRecords({ recentLines: (id, n) => logs.recent(id, n) });
  const manager = new DynoManager({
    driver, slugs, stacks,
    ports,
    network,
    settings: { dynosDir: dirs.dynos, address, dynoUser: config.dynoUser, bootTimeoutMs: config.bootTimeoutMs, nofile: config.nofile },
    log: log.child({ component: 'dynos' }),
    allocatableBytes: () => allocatable,
    stopGraceMs: config.stopGraceMs,
    restartPolicy: config.restarts,
    memory: { ...memoryWatchSettings(config.memory, (w) => link.memoryWarning(w)), r14: () => metrics.memoryQuotaExceeded.inc() },
    memorySampleMs: config.memory.sampleMs,
    records,
    pressure: () => pressure.refusal(),
    logs,
    decisions, exits, metrics,
    // An attached one-off's leg goes to the coordinator the link is on now (read when dialled).
    attach: rendezvousDialer({ currentUrl: (): string => link.status().coordinatorUrl ?? config.coordinatorUrls[0]!, ca: config.ca, clientCert: config.link.clientCert }),
    ...(config.cycling.enabled ? { cycling: { periodMs: config.cycling.periodMs, jitterMs: config.cycling.jitterMs, graceMs: config.stopGraceMs } } : {}),
  });
  // 4. Coordinator link: one owner (agent-link.ts) of what goes to the coordinator: the outbox,
  // the event journal, convergence, the command handlers and the session. It is built here but
  // dialled only at the end; until the welcome, events wait in its outbox. Its transition
  // listener is registered before recover(): a dyno that crashed while the agent was down is
  // reported `crashed` as an event, sent after the welcome, not only in the hello's snapshot.
  // The listener never throws and never waits on the disk (the journal is written after).
  // EC2's signals (host/ec2/host-signals.ts): an interruption (spot, scale-in) drains the host;
  // each distinct notice is a journaled host_notice event; the capacity report lists them.
  const signals = ec2 && config.ec2 ? new HostSignals({
    client: ec2.client, pollMs: config.ec2.pollMs, stateFile: join(dirs.agent, 'host-notices.json'), log: log.child({ component: 'ec2' }),
    notify: (n) => link.hostNotice(n),
    interrupted: (n) => manager.drain({ cause: n.notice, ...(n.deadline ? { deadline: n.deadline } : {}) }),
  }) : undefined;
  // The zone the coordinator spreads an app's dynos across: the configured one, else EC2's.
  const zone = placementZone(config.zone, ec2?.identity.availabilityZone);
  const identity: AgentIdentity = {
    id: agentId, hostname: hostname(), address, version: AGENT_VERSION, runtime: driver.name, features: attachFeatures(driver.name),
    ...(ec2 ? { ec2: ec2.identity } : {}), ...(zone !== undefined ? { zone } : {}),
  };
  const capacity = async (): Promise<Capacity> => ({ ...buildCapacity({
    memory: await readHostMemory(), reservedBytes, committedBytes: manager.committedBytes(),
    dynoCount: manager.list().length, slugCache: await slugs.usage(), accepting: manager.accepting && pressure.accepting,
    dynoMemory: manager.memoryByDyno(),
  }), ...(signals ? { notices: signals.notices() } : {}) });
  const link = new AgentLink({
    dial: { urls: config.coordinatorUrls, token: config.token, ca: config.ca, clientCert: config.link.clientCert },
    unknownDynoGraceMs: config.link.unknownDynoGraceMs,
    journalFile: join(dirs.agent, 'events.jsonl'),
    identity, capacity, manager, log: log.child({ component: 'link' }),
    // A prefetch writes a slug into the state dir: refused under pressure like a start.
    commands: (type, ok) => metrics.command(type, ok),
    slugs: { has: (sha256) => slugs.has(sha256), ensure: (ref) => {
      const refused = pressure.refusal();
      return refused ? Promise.reject(refused) : slugs.ensure(ref);
    } },
  });
  pressure.start();
  manager.onTransition(link.transition);
  // What an earlier agent process started is re-adopted before the link opens (the hello then
  // names it); containers nobody owns are removed.
  const notifier = options.systemd?.notifier;
  const extendStart = () => notifier?.notify({ EXTEND_TIMEOUT_USEC: String(EXTEND_TIMEOUT_MS * 1000), STATUS: 're-adopting dynos' });
  extendStart();
  const extending = setInterval(extendStart, EXTEND_EVERY_MS);
  extending.unref();
  try {
    await manager.recover(dirs.dynos, driverCache(driverOptions, driver));
  } finally {
    clearInterval(extending);
  }
  // What no re-adopted dyno claimed is what a crash or a reboot left: removed. Then the pool fills.
  await network.reconcile();
  network.watch();
  const stopSampling = manager.startMemorySampling();
  const shipLogs = setInterval(() => {
    // Up to 10 batches a second while lines are queued; none while the link is down or slow.
    for (let i = 0; i < 10 && logs.queued + logs.dropped > 0; i++) {
      if (!link.trySendLogs(() => {
        const b = logs.take(1000);
        return b ? { type: 'logs', lines: b.lines, dropped: b.dropped } : undefined;
      })) break;
    }
  }, LOG_SHIP_MS);
  shipLogs.unref();

  registerDynoCollector(metrics, manager, driver.name);
  const agentSeries = registerAgentCollector(metrics, {
    link: () => link.status(), slugs: () => slugs.stats(),
    logs: () => ({ queued: logs.queued, ...logs.totals() }),
    journalBytes: () => fileBytes(join(dirs.agent, 'events.jsonl')),
  });

  // 5. Diagnostics on loopback, or on a unix socket (mode 0600).
  const token = await diagnosticsToken(config.diagnosticsTokenFile);
  const diagnostics = createDiagnosticsServer({
    identity: () => identity,
    dynos: () => manager.list().map((d) => ({ ...d, ...manager.runtimeInfo(d.id) })),
    capacity,
    link: () => link.status(),
    slugs: () => slugs.usage(),
    pressure: () => pressure.status(),
    decisions: (filter) => decisions.list(filter),
    // A dyno still here with no exit yet has none; one gone keeps its records a while.
    exits: (dyno) => exits.list(dyno) ?? (manager.get(dyno) ?? manager.list().find((d) => d.name === dyno) ? [] : undefined),
    dynoLog: async (id, n) => {
      const d = manager.get(id);
      if (!d) return undefined;
      // The shipper's last 1,500 lines (app and slipway lines) while it has them; the log
      // file's tail otherwise (a dyno re-adopted by this process, followed from the end).
      const recent = logs.recent(id, n);
      return recent.length > 0 ? recent : tailLog(manager.logSource(id) ?? join(dirs.dynos, id, 'log'), d.name, n);
    },
    // `logs -f` (diagnostics/log-follow.ts): each line as the shipper keeps it.
    followLog: (id, onLine) => (manager.get(id) ? logs.subscribe(id, onLine) : undefined),
    metrics: () => metrics.exposition(),
  }, token, log.child({ component: 'diagnostics' }));
  const diagnosticsUrl = await listenDiagnostics(diagnostics, diagnosticsTarget(config.diagnosticsListen));
  // After listen, an accept that fails is an 'error' event, and without a listener it would end
  // the agent. At EMFILE libuv closes the connections it cannot take itself (its reserve
  // descriptor); when even that fails, the error lands here. The server keeps listening.
  diagnostics.on('error', (err) => log.warn({ err }, 'diagnostics server error'));

  signals?.start();
  link.start();
  log.info({ agentId, address, diagnosticsUrl, allocatableBytes: allocatable, stateDir: config.stateDir }, 'agent started');
  // Ready: re-adoption is done and diagnostics listen. The coordinator link is not waited for:
  // readiness is about the local daemon, and a coordinator outage must not fail every start.
  let watchdog: Watchdog | undefined;
  if (notifier) {
    watchdog = new Watchdog({
      notifier, liveness: { supervisedAt: () => manager.supervisedAt, supervisionPeriodMs: config.memory.sampleMs },
      status: () => serviceStatusText(manager.list(), link.status().state, manager.accepting),
      log: log.child({ component: 'watchdog' }),
      ...(options.systemd?.watchdogUsec ? { watchdogUsec: options.systemd.watchdogUsec } : {}),
    });
    notifier.notify({ READY: '1', STATUS: serviceStatusText(manager.list(), link.status().state, manager.accepting) });
    watchdog.start();
  }

  return {
    manager, link, diagnosticsUrl, diagnosticsToken: token,
    async close(options = {}) {
      watchdog?.stop();
      pressure.stop();
      records.close();
      signals?.stop();
      stopSampling();
      clearInterval(shipLogs);
      agentSeries.stop();
      logs.stop();
      if (options.stopDynos) {
        decisions.record({ kind: 'drain', message: 'agent shutting down with stopDynos: every dyno is stopped', data: { cause: 'shutdown', stopDynos: true, dynos: manager.list().length } });
        await manager.stopAll();
      }
      await link.close();
      await network.close();
      // close() waits for every open connection, and a `logs -f` or an idle keep-alive one
      // would hold it: they are closed at once, after the listener stops taking new ones.
      const closed = new Promise<void>((resolve) => diagnostics.close(() => resolve()));
      diagnostics.closeAllConnections();
      await closed;
    },
  };
}

export function splitHostPort(s: string): [string, number] {
  const i = s.lastIndexOf(':');
  return [s.slice(0, i).replace(/^\[|\]$/g, ''), Number(s.slice(i + 1))];
}

/** diagnosticsListen as a target: `unix:/run/slipway/diagnostics.sock` or a loopback `host:port`. */
export function diagnosticsTarget(listen: string): DiagnosticsTarget {
  if (listen.startsWith('unix:')) return { path: listen.slice('unix:'.length) };
  const [host, port] = splitHostPort(listen);
  return { host, port };
}

/** A file's size, 0 while it does not exist (the journal before its first event). */
function fileBytes(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}
