// The agent <-> coordinator protocol: every message type, its schema and its decoder.
//
// Schemas are TypeBox values, i.e. plain JSON Schema objects at run time: the validator
// and the JSON Schema a coordinator in another language reads come from the same source
// (`npm run schema` prints them). TypeBox was chosen over hand-written checks because it
// gives static types, compiled validators and standard JSON Schema from one definition.
//
// Principles (../DESIGN.md): the agent dials out; one message per WebSocket text frame;
// every frame is decoded through one table from `type` to a compiled validator; unknown or
// invalid frames get an `error` reply with a stable code and never throw.
import { FormatRegistry, Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import type { ErrorCode } from './errors.js';

export const PROTOCOL_VERSION = 1;
/** Largest frame either side accepts. A hello with 100 dynos is ~100 KB; config vars are
 * capped near 32 KB per app on Heroku. 1 MiB leaves room without inviting abuse. */
export const MAX_FRAME_BYTES = 1024 * 1024;
/** Path of the WebSocket endpoint on the coordinator. */
export const AGENT_WS_PATH = '/v1/agent';

const strict = { additionalProperties: false } as const;

// TypeBox's compiler rejects unknown formats, so the one format used here is registered.
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
if (!FormatRegistry.Has('date-time')) FormatRegistry.Set('date-time', (v) => RFC3339.test(v) && !Number.isNaN(Date.parse(v)));

export const DynoId = Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$', description: 'Unique id of one dyno instance, chosen by the coordinator; also the container name.' });
export const AppName = Type.String({ pattern: '^[a-z][a-z0-9-]{1,29}$', description: "Heroku-style app name." });
export const ProcessType = Type.String({ pattern: '^[A-Za-z0-9_-]{1,30}$', description: 'Procfile process type: web, worker, ...' });
export const DynoName = Type.String({ pattern: '^[A-Za-z0-9_-]{1,30}\\.[0-9]{1,6}$', description: 'The DYNO value: web.1, worker.3, run.9157.' });
export const Sha256 = Type.String({ pattern: '^[a-f0-9]{64}$' });
export const CommandId = Type.String({ pattern: '^[A-Za-z0-9._:-]{1,128}$' });
export const Timestamp = Type.String({ format: 'date-time', maxLength: 40, description: 'RFC 3339 time.' });
export const StackName = Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,62}$' });

export const DynoSize = Type.Object({
  name: Type.String({ pattern: '^[a-z0-9][a-z0-9.-]{0,31}$' }),
  memoryMb: Type.Integer({ minimum: 16, maximum: 1048576 }),
  cpuShares: Type.Integer({ minimum: 2, maximum: 262144 }),
  cpuQuotaPercent: Type.Optional(Type.Integer({ minimum: 1, maximum: 25600, description: 'Hard CPU cap in percent of one core (100 = one core); absent: CPU shares only.' })),
  pidsLimit: Type.Integer({ minimum: 8, maximum: 65536 }),
}, { ...strict, description: 'A dyno size resolved by the coordinator into the limits the agent enforces.' });

/** Longest slug signature (the whole `.minisig` text): minisign reads the untrusted comment
 * into a 1,024-byte line buffer and the trusted comment into an 8,192-byte one; the two base64
 * lines are 100 and 88 characters. */
export const MAX_SLUG_SIGNATURE_CHARS = 10_240;

export const SlugRef = Type.Object({
  url: Type.String({ minLength: 1, maxLength: 8192, description: 'http(s) URL (presigned URLs allowed). The query string is a secret.' }),
  sha256: Sha256,
  signature: Type.Optional(Type.String({
    minLength: 1,
    maxLength: MAX_SLUG_SIGNATURE_CHARS,
    description: "The slug's detached minisign signature: the whole text of the `.minisig` file `minisign -S` writes (prehashed, algorithm ED). Verified against the agent's slugPublicKeys before extraction; required when the agent has requireSignedSlugs.",
  })),
}, strict);

/** An attached one-off dyno (`slipway run` without --detach): its stdio goes through the
 * coordinator's rendezvous (shared/attach.ts), not to the app's logs. Sent only to agents whose
 * identity names the `attach` feature. */
export const DynoAttachSpec = Type.Object({
  session: Type.String({ pattern: '^[a-f0-9]{32}$', description: 'The rendezvous session: the agent dials RENDEZVOUS_PATH + session on the URL of its current link.' }),
  secret: Type.String({ minLength: 16, maxLength: 128, description: "The agent leg's bearer secret, good for one connection (a secret: never logged or echoed)." }),
  tty: Type.Boolean({ description: 'A terminal (`slipway run -t`): stdout and stderr are one stream, resize messages change its size.' }),
  cols: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000 })),
  rows: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000 })),
}, { ...strict, description: 'The stdio of an attached one-off dyno.' });

export const DynoSpec = Type.Object({
  id: DynoId,
  app: AppName,
  type: ProcessType,
  name: DynoName,
  release: Type.Optional(Type.String({ maxLength: 64 })),
  size: DynoSize,
  command: Type.String({ minLength: 1, maxLength: 32768 }),
  env: Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]{0,254}$' }), Type.String({ maxLength: 65536 }), {
    additionalProperties: false,
    maxProperties: 1000,
    description: 'Config vars (secrets: never logged or echoed).',
  }),
  slug: SlugRef,
  stack: StackName,
  attach: Type.Optional(DynoAttachSpec),
}, strict);

export const DynoStateName = Type.Union([
  Type.Literal('starting'),
  Type.Literal('up'),
  Type.Literal('crashed'),
  Type.Literal('stopping'),
  Type.Literal('down'),
]);

export const Endpoint = Type.Object({ host: Type.String({ maxLength: 255 }), port: Type.Integer({ minimum: 1, maximum: 65535 }) }, strict);

export const ExitStatus = Type.Object({
  code: Type.Union([Type.Integer(), Type.Null()]),
  signal: Type.Union([Type.String({ maxLength: 16 }), Type.Null()]),
}, strict);

export const WireError = Type.Object({
  code: Type.String({ maxLength: 64 }),
  message: Type.String({ maxLength: 4096 }),
  retryable: Type.Boolean(),
}, strict);

/** What the agent recorded of a dyno's exit (agent/dynos/exit-record-hook.ts), kept small:
 * the full record (50 log lines) is at the agent's `GET /v1/dynos/:id/exits`. */
export const ExitSummary = Type.Object({
  code: Type.Union([Type.Integer(), Type.Null()]),
  signal: Type.Union([Type.String({ maxLength: 16 }), Type.Null()]),
  oomKilled: Type.Boolean({ description: "From the cgroup's OOM counter (or the exit's own OOM flag), never from exit code 137 alone." }),
  peakMemoryBytes: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], { description: "The cgroup's peak usage (v1 memory.max_usage_in_bytes, v2 memory.peak); null when unknown." }),
  throttledPeriods: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], { description: 'cpu.stat nr_throttled of the container; null when unknown.' }),
  restartCount: Type.Integer({ minimum: 0, description: 'Crash restarts in a row before this run (0: its first run, or its first since a healthy run or a new release).' }),
  bindMs: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], { description: 'A web dyno: from its container start to $PORT accepting; null for a worker, or a web dyno that never bound.' }),
  lines: Type.Array(Type.String({ maxLength: 256 }), { maxItems: 10, description: "The dyno's last log lines, oldest first, each cut to 200 characters." }),
}, strict);

export const DynoStatus = Type.Object({
  id: DynoId,
  app: AppName,
  type: ProcessType,
  name: DynoName,
  release: Type.Optional(Type.String({ maxLength: 64 })),
  state: DynoStateName,
  memoryMb: Type.Integer({ minimum: 0 }),
  since: Timestamp,
  endpoint: Type.Optional(Endpoint),
  exit: Type.Optional(ExitStatus),
  reason: Type.Optional(WireError),
  exitSummary: Type.Optional(ExitSummary),
}, { ...strict, description: "What the agent knows of one dyno. Env and command are never echoed (they hold secrets). `exitSummary` is only in the `dyno_state` event of a transition to `crashed` (never in a hello's snapshot, a result or the diagnostics list)." });

/** A sign from EC2 that this host is going away or may soon (agent/host/ec2/host-signals.ts). */
export const HostNoticeKind = Type.Union([
  Type.Literal('spot_interruption'),
  Type.Literal('terminating'),
  Type.Literal('rebalance'),
], { description: "`spot_interruption`: EC2's spot instance-action notice (about 2 min ahead). `terminating`: the Auto Scaling target lifecycle state is Terminated (scale-in). Both drain the host. `rebalance`: a rebalance recommendation (elevated interruption risk): reported, not drained; placement avoids the host." });

export const HostNotice = Type.Object({
  notice: HostNoticeKind,
  deadline: Type.Optional(Type.String({ format: 'date-time', maxLength: 40, description: "When EC2 acts (the spot notice's `time`); absent when EC2 names no time (a scale-in, a rebalance recommendation)." })),
  action: Type.Optional(Type.Union([Type.Literal('terminate'), Type.Literal('stop'), Type.Literal('hibernate')], { description: 'What a spot interruption does to the instance.' })),
  noticeTime: Type.Optional(Type.String({ format: 'date-time', maxLength: 40, description: "A rebalance recommendation's own time." })),
  noticedAt: Type.String({ format: 'date-time', maxLength: 40, description: 'When the agent first saw the notice.' }),
}, strict);

export const Capacity = Type.Object({
  memory: Type.Object({
    totalBytes: Type.Integer({ minimum: 0 }),
    reservedBytes: Type.Integer({ minimum: 0 }),
    allocatableBytes: Type.Integer({ minimum: 0 }),
    committedBytes: Type.Integer({ minimum: 0, description: 'Sum of the memory quotas of the dynos on the host.' }),
    usedBytes: Type.Integer({ minimum: 0, description: 'Real host memory in use (excluding page cache).' }),
  }, strict),
  cpu: Type.Object({ cores: Type.Integer({ minimum: 0 }), load1: Type.Number({ minimum: 0 }) }, strict),
  dynoCount: Type.Integer({ minimum: 0 }),
  slugCache: Type.Object({
    entries: Type.Integer({ minimum: 0 }),
    bytes: Type.Integer({ minimum: 0, description: 'Unpacked bytes of the cached slugs.' }),
    budgetBytes: Type.Integer({ minimum: 0 }),
    freeBytes: Type.Integer({ minimum: 0, description: "Free bytes of the cache's file system." }),
    slugs: Type.Array(Type.Object({ sha256: Sha256, bytes: Type.Integer({ minimum: 0 }) }, strict), {
      maxItems: 1000,
      description: 'Cached slugs, most recently used first: a coordinator may prefer hosts that have a slug.',
    }),
  }, strict),
  accepting: Type.Boolean({ description: 'False while the host is draining, or refuses new dynos for its disk or file descriptors (STATE_DIR_FULL, STATE_DIR_FAILING, AGENT_FD_LIMIT).' }),
  notices: Type.Optional(Type.Array(HostNotice, { maxItems: 3, description: 'What EC2 says of this host now, at most one of each kind: a host with any is a last choice for placement; one with an interruption or a termination accepts nothing.' })),
  dynoMemory: Type.Optional(Type.Array(Type.Object({
    id: DynoId,
    quotaBytes: Type.Integer({ minimum: 0 }),
    workingSetBytes: Type.Integer({ minimum: 0, description: "The cgroup's usage minus its inactive file cache." }),
    swapBytes: Type.Integer({ minimum: 0 }),
  }, strict), { maxItems: 10_000, description: "Each running dyno's last memory sample (every few seconds); committedBytes is the sum of quotas." })),
}, strict);

/** `attach`: DynoSpec.attach, an attached one-off dyno (`slipway run`, shared/attach.ts);
 * `attach-tty`: with a terminal too (`slipway run -t`; LXC hosts cannot). */
export const AGENT_FEATURES = ['attach', 'attach-tty'] as const;
export const AgentFeature = Type.Union(AGENT_FEATURES.map((f) => Type.Literal(f)), { description: 'A capability an agent announces in its identity.' });

export const AgentIdentity = Type.Object({
  id: Type.String({ pattern: '^[A-Za-z0-9._-]{1,128}$' }),
  hostname: Type.String({ maxLength: 255 }),
  address: Type.String({ maxLength: 255, description: 'Address at which dyno endpoints on this host are reachable.' }),
  version: Type.String({ maxLength: 64 }),
  runtime: Type.String({ maxLength: 32 }),
  ec2: Type.Optional(Type.Object({
    instanceId: Type.String({ maxLength: 128 }),
    instanceType: Type.String({ maxLength: 64 }),
    availabilityZone: Type.String({ maxLength: 64 }),
    region: Type.String({ maxLength: 64 }),
    privateIp: Type.String({ maxLength: 45 }),
  }, { ...strict, description: "The instance, from IMDSv2, when the agent runs on EC2 (`id` is then the instance id unless configured, and `address` the private IPv4)." })),
  features: Type.Optional(Type.Array(AgentFeature, { maxItems: 16, uniqueItems: true, description: 'What this agent can do beyond protocol 1 (absent: none). The coordinator sends a field a feature adds only to agents that name it: an older agent refuses a spec with a field it does not know.' })),
  zone: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._-]{1,64}$', description: "The host's failure domain for placement: the agent's configured `zone`, else the EC2 availability zone. The coordinator spreads an app's dynos across zones (absent: one unnamed zone)." })),
}, strict);

// ---- agent -> coordinator ----
export const Hello = Type.Object({
  type: Type.Literal('hello'),
  protocol: Type.Integer({ minimum: 1 }),
  agent: AgentIdentity,
  seqEpoch: Type.String({
    pattern: '^[A-Za-z0-9-]{8,64}$',
    description: "Names the agent's event numbering. A new value means seq started again at 1 (an agent restart without a persisted journal): the coordinator forgets the old numbering and welcomes with ackSeq 0.",
  }),
  capacity: Capacity,
  dynos: Type.Array(DynoStatus, { maxItems: 4096 }),
}, { ...strict, description: 'First frame after every (re)connect: the complete current state of the host.' });

export const DynoStateEvent = Type.Object({
  kind: Type.Literal('dyno_state'),
  from: Type.Union([DynoStateName, Type.Null()]),
  dyno: DynoStatus,
}, strict);

export const HostNoticeEvent = Type.Object({
  kind: Type.Literal('host_notice'),
  ...HostNotice.properties,
}, { ...strict, description: 'Sent once per distinct notice (a new spot deadline, a new rebalance time), journaled like dyno events. With spot_interruption or terminating the host has stopped accepting dynos: the coordinator starts replacements elsewhere, then stops the host\'s dynos with a grace that fits the deadline.' });

/** A dyno's memory heading for R15 (agent/dynos/memory-projection.ts): sent once per episode. */
export const MemoryWarning = Type.Object({
  dynoId: DynoId,
  app: AppName,
  name: DynoName,
  projectedMs: Type.Integer({ minimum: 0, description: 'Projected time until working set + swap reaches limitBytes (the R15 line, which is also the kernel hard limit: an OOM kill).' }),
  workingSetBytes: Type.Integer({ minimum: 0, description: 'Working set + swap of the last sample.' }),
  limitBytes: Type.Integer({ minimum: 0, description: 'The R15 line: memory.r15Multiple x the quota.' }),
  slopeBytesPerSec: Type.Number({ minimum: 0, description: 'The least-squares growth of working set + swap over the sample window.' }),
  pressureSome10: Type.Optional(Type.Number({ minimum: 0, maximum: 100, description: "cgroup v2 PSI `memory.pressure` `some avg10` (percent of time stalled on memory); absent on cgroup v1." })),
}, strict);

export const MemoryWarningEvent = Type.Object({
  kind: Type.Literal('memory_warning'),
  ...MemoryWarning.properties,
}, { ...strict, description: "Working set + swap of a dyno is projected to reach its R15 line within the agent's memory.warnHorizonMs: once per episode (again only after the trend went away, or after the horizon passed). Advisory: the dyno keeps running; the coordinator may start a replacement before the crash." });

export const Event = Type.Object({
  type: Type.Literal('event'),
  seq: Type.Integer({ minimum: 1, description: 'Per-agent sequence number, kept until acknowledged and resent after reconnect.' }),
  at: Timestamp,
  event: Type.Union([DynoStateEvent, HostNoticeEvent, MemoryWarningEvent]),
}, strict);

export const LogBatch = Type.Object({
  type: Type.Literal('logs'),
  lines: Type.Array(Type.Object({
    dynoId: DynoId,
    app: AppName,
    line: Type.String({ maxLength: 12_000, description: 'Heroku style: `TIMESTAMP app[web.1]: text` or `TIMESTAMP slipway[web.1]: text`; text at most 10,000 bytes.' }),
  }, strict), { maxItems: 1000 }),
  dropped: Type.Integer({ minimum: 0, description: "Lines dropped since the previous batch: the agent's queue was full (link down or slow)." }),
}, { ...strict, description: 'Dyno log lines, best effort: not sequenced, not acknowledged, dropped oldest first when the link cannot keep up.' });

export const CapacityReport = Type.Object({ type: Type.Literal('capacity'), capacity: Capacity }, { ...strict, description: 'Periodic; latest wins, not sequenced.' });

export const ResultOk = Type.Object({
  type: Type.Literal('result'),
  id: CommandId,
  ok: Type.Literal(true),
  dyno: Type.Optional(DynoStatus),
  slug: Type.Optional(Type.Object({ sha256: Sha256, cached: Type.Boolean({ description: 'False: the download runs in the background.' }) }, strict)),
  host: Type.Optional(Type.Object({
    accepting: Type.Boolean(),
    stopping: Type.Integer({ minimum: 0, description: 'Dynos a drain with stopDynos began to stop.' }),
  }, strict)),
}, strict);
export const ResultErr = Type.Object({ type: Type.Literal('result'), id: CommandId, ok: Type.Literal(false), error: WireError }, strict);
export const Result = Type.Union([ResultOk, ResultErr]);

export const ErrorMessage = Type.Object({
  type: Type.Literal('error'),
  code: Type.String({ maxLength: 64 }),
  message: Type.String({ maxLength: 4096 }),
  ref: Type.Optional(Type.String({ maxLength: 128, description: 'The command id or message type the error answers.' })),
}, strict);

// ---- coordinator -> agent ----
export const DesiredDyno = Type.Object({
  id: DynoId,
  spec: Type.Optional(DynoSpec),
}, { ...strict, description: 'A dyno the coordinator wants on this host. With `spec`, the agent starts it if it does not run it (e.g. its start was lost); without, the agent only keeps it.' });

export const ReconnectHint = Type.Object({
  spreadMs: Type.Integer({
    minimum: 0,
    maximum: 600_000,
    description: 'When this link drops without a close that names a time, wait a random time up to spreadMs before the first redial (then back off from there): a fleet does not stampede a restarted coordinator.',
  }),
}, strict);

export const Welcome = Type.Object({
  type: Type.Literal('welcome'),
  protocol: Type.Integer({ minimum: 1 }),
  coordinatorId: Type.String({ maxLength: 128 }),
  ackSeq: Type.Integer({ minimum: 0, description: 'Highest event seq the coordinator already holds for this agent.' }),
  epoch: Type.Optional(Type.Integer({ minimum: 0, description: "The leader's epoch (coordinators sharing one store: each new leader's is higher). The agent remembers the highest it was welcomed with and refuses commands (COORDINATOR_STALE_EPOCH) on a link whose welcome carried a lower one. Absent: 0 (a coordinator without a shared store)." })),
  desired: Type.Optional(Type.Array(DesiredDyno, {
    maxItems: 4096,
    description: "The coordinator's desired set for this host, answering the hello. Absent: the coordinator keeps no desired set and the agent changes nothing. Present: the agent starts listed dynos with a spec that it does not run, and stops the dynos it runs that are not listed once they stayed unlisted for its grace for unknown dynos (a start_dyno for one of them claims it).",
  })),
  reconnect: Type.Optional(ReconnectHint),
}, strict);

export const Hint = Type.Object({
  type: Type.Literal('hint'),
  reconnect: ReconnectHint,
}, { ...strict, description: "Updates the welcome's reconnect hint on a live link (the coordinator's fleet grew since this agent's welcome): later values replace earlier ones." });

export const Ack = Type.Object({ type: Type.Literal('ack'), seq: Type.Integer({ minimum: 0, description: 'Cumulative: every event up to and including seq.' }) }, strict);

export const StartDyno = Type.Object({ type: Type.Literal('start_dyno'), id: CommandId, dyno: DynoSpec }, strict);
export const StopDyno = Type.Object({
  type: Type.Literal('stop_dyno'),
  id: CommandId,
  dynoId: DynoId,
  graceMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 3_600_000 })),
}, strict);

export const PrefetchSlug = Type.Object({
  type: Type.Literal('prefetch_slug'),
  id: CommandId,
  slug: SlugRef,
}, { ...strict, description: 'Warm the slug cache before dynos of a release are placed here (answered at once; the download runs in the background).' });

export const Drain = Type.Object({
  type: Type.Literal('drain'),
  id: CommandId,
  stopDynos: Type.Optional(Type.Boolean({ description: 'Also stop every dyno (Heroku style, with grace); default false: they keep running.' })),
  graceMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 3_600_000 })),
}, { ...strict, description: 'Stop accepting new dynos (start_dyno then fails with HOST_DRAINING), e.g. before the host is retired.' });

export const Undrain = Type.Object({ type: Type.Literal('undrain'), id: CommandId }, { ...strict, description: 'Accept new dynos again.' });

/** Every message type, per direction. The decoder's table is built from these. */
export const AGENT_MESSAGES = { hello: Hello, event: Event, capacity: CapacityReport, result: Result, logs: LogBatch, error: ErrorMessage } as const;
export const COORDINATOR_MESSAGES = { welcome: Welcome, hint: Hint, ack: Ack, start_dyno: StartDyno, stop_dyno: StopDyno, prefetch_slug: PrefetchSlug, drain: Drain, undrain: Undrain, error: ErrorMessage } as const;

export type DynoSpec = Static<typeof DynoSpec>;
export type DynoAttachSpec = Static<typeof DynoAttachSpec>;
export type AgentFeature = Static<typeof AgentFeature>;
export type DynoSize = Static<typeof DynoSize>;
export type DynoStatus = Static<typeof DynoStatus>;
export type DynoStateName = Static<typeof DynoStateName>;
export type Endpoint = Static<typeof Endpoint>;
export type ExitStatus = Static<typeof ExitStatus>;
export type ExitSummary = Static<typeof ExitSummary>;
export type WireError = Static<typeof WireError>;
export type Capacity = Static<typeof Capacity>;
export type AgentIdentity = Static<typeof AgentIdentity>;
export type Hello = Static<typeof Hello>;
export type Event = Static<typeof Event>;
export type DynoStateEvent = Static<typeof DynoStateEvent>;
export type HostNoticeEvent = Static<typeof HostNoticeEvent>;
export type HostNotice = Static<typeof HostNotice>;
export type HostNoticeKind = Static<typeof HostNoticeKind>;
export type MemoryWarning = Static<typeof MemoryWarning>;
export type MemoryWarningEvent = Static<typeof MemoryWarningEvent>;
export type CapacityReport = Static<typeof CapacityReport>;
export type Result = Static<typeof Result>;
export type ErrorMessage = Static<typeof ErrorMessage>;
export type Welcome = Static<typeof Welcome>;
export type DesiredDyno = Static<typeof DesiredDyno>;
export type ReconnectHint = Static<typeof ReconnectHint>;
export type Ack = Static<typeof Ack>;
export type Hint = Static<typeof Hint>;
export type StartDyno = Static<typeof StartDyno>;
export type StopDyno = Static<typeof StopDyno>;
export type PrefetchSlug = Static<typeof PrefetchSlug>;
export type Drain = Static<typeof Drain>;
export type Undrain = Static<typeof Undrain>;
export type LogBatch = Static<typeof LogBatch>;
export type AgentMessage = Hello | Event | CapacityReport | Result | LogBatch | ErrorMessage;
export type CoordinatorMessage = Welcome | Hint | Ack | StartDyno | StopDyno | PrefetchSlug | Drain | Undrain | ErrorMessage;
export type Command = StartDyno | StopDyno | PrefetchSlug | Drain | Undrain;

export type Decoded<M> =
  | { ok: true; message: M }
  | { ok: false; error: { code: ErrorCode; message: string; ref?: string } };

type Table = Record<string, TypeCheck<TSchema>>;

function compileTable(messages: Record<string, TSchema>): Table {
  const table = Object.create(null) as Table;
  for (const [type, schema] of Object.entries(messages)) table[type] = TypeCompiler.Compile(schema);
  return table;
}

function makeDecoder<M>(table: Table): (raw: string | Buffer) => Decoded<M> {
  return (raw) => {
    const size = typeof raw === 'string' ? Buffer.byteLength(raw) : raw.length;
    if (size > MAX_FRAME_BYTES) {
      return { ok: false, error: { code: 'PROTOCOL_SCHEMA_VIOLATION', message: `frame of ${size} bytes exceeds ${MAX_FRAME_BYTES}` } };
    }
    let value: unknown;
    try {
      value = JSON.parse(typeof raw === 'string' ? raw : raw.toString('utf8'));
    } catch {
      return { ok: false, error: { code: 'PROTOCOL_INVALID_JSON', message: 'frame is not valid JSON' } };
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      return { ok: false, error: { code: 'PROTOCOL_SCHEMA_VIOLATION', message: 'a message must be a JSON object' } };
    }
    const { type, id } = value as { type?: unknown; id?: unknown };
    const ref = typeof id === 'string' && id.length <= 128 ? id : undefined;
    const check = typeof type === 'string' ? table[type] : undefined;
    if (!check) {
      const shown = typeof type === 'string' ? JSON.stringify(type.slice(0, 64)) : 'missing';
      return { ok: false, error: { code: 'PROTOCOL_UNKNOWN_TYPE', message: `unknown message type ${shown}`, ...(ref ? { ref } : {}) } };
    }
    if (!check.Check(value)) {
      const first = check.Errors(value).First();
      const where = first ? `${first.path || '/'}: ${first.message}` : 'invalid';
      return { ok: false, error: { code: 'PROTOCOL_SCHEMA_VIOLATION', message: `${type as string} ${where}`, ref: ref ?? (type as string) } };
    }
    return { ok: true, message: value as M };
  };
}

/** Decodes a frame the coordinator received from an agent. */
export const decodeAgentMessage = makeDecoder<AgentMessage>(compileTable(AGENT_MESSAGES));
/** Decodes a frame the agent received from the coordinator. */
export const decodeCoordinatorMessage = makeDecoder<CoordinatorMessage>(compileTable(COORDINATOR_MESSAGES));

/** The JSON Schema of every message, for coordinators written in other languages. */
export function protocolJsonSchema(): Record<string, unknown> {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: `slipway agent protocol v${PROTOCOL_VERSION}`,
    agentToCoordinator: AGENT_MESSAGES,
    coordinatorToAgent: COORDINATOR_MESSAGES,
  };
}
