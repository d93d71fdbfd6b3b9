// The agent's side of the coordinator link, as one owner: it builds and holds the outbox, the
// event journal and its writer, convergence, the command handlers and the session, and it is
// the only thing that puts events into the outbox. start.ts hands it the manager, the slug
// store, the link settings and the hello's sources (identity, capacity), and registers
// `transition` as the manager's listener.
//
// Invariant: a dyno transition never fails and never waits on the disk. `transition` numbers
// the event, keeps it in the in-memory outbox and sends it if the link is ready, all at once;
// the journal write happens afterwards in JournalWriter (journal-writer.ts), which retries a
// failing disk and reports it in status().journal. So a disk error (EIO, ENOSPC) can no
// longer land between a dyno's `crashed` and its restart scheduling (dynos/dyno.ts).
import type { AgentIdentity, Capacity, DynoStateName, DynoStatus, Event, Hello, HostNotice, LogBatch, MemoryWarning } from '../../shared/protocol.js';
import { PROTOCOL_VERSION } from '../../shared/protocol.js';
import type { Logger } from '../../shared/log.js';
import type { DynoManager } from '../dynos/manager.js';
import { Convergence, refusedStatus } from './convergence.js';
import { EventJournal, type JournalFiles } from './event-journal.js';
import { buildHandlers, type CommandCounter } from './handlers/index.js';
import type { SlugPrefetcher } from './handlers/prefetch-slug.js';
import { journaledOutbox, type JournalClock, type JournalWriter } from './journal-writer.js';
import type { EventOutbox } from './outbox.js';
import { LinkSession, type LinkStatus, type SessionOptions } from './session.js';
import type { LinkDialOptions } from './transport.js';

export interface AgentLinkOptions {
  /** Where and how to dial the coordinator: its url, or several coordinators' urls (tried in
   * turn, url-rotation.ts), the token, TLS. */
  dial: LinkDialOptions;
  /** `<stateDir>/agent/events.jsonl`. */
  journalFile: string;
  identity: AgentIdentity;
  capacity: () => Promise<Capacity>;
  manager: DynoManager;
  slugs: SlugPrefetcher;
  log: Logger;
  /** How long an unlisted dyno keeps running (convergence.ts); default UNKNOWN_DYNO_GRACE_MS. */
  unknownDynoGraceMs?: number;
  /** Tests: a journal that fails on purpose, fake time for its retries, faster redials. */
  journalFiles?: JournalFiles;
  journalClock?: JournalClock;
  session?: Pick<SessionOptions, 'reconnectInitialMs' | 'pingIntervalMs' | 'healthyAfterMs'>;
  /** Counts each command's result (agent/metrics/agent-metrics.ts). */
  commands?: CommandCounter;
}

export class AgentLink {
  /** The event numbering's epoch, kept in the journal across agent restarts. */
  readonly epoch: string;
  private readonly outbox: EventOutbox;
  private readonly journal: JournalWriter;
  private readonly convergence: Convergence;
  private readonly session: LinkSession;
  private readonly log: Logger;

  constructor(o: AgentLinkOptions) {
    this.log = o.log;
    // Events and their numbering survive an agent restart in the journal: unacked ones are
    // resent under the same epoch (a new epoch only with a new or unreadable journal). The
    // journal is only read here; its compacted rewrite is the writer's first write, so a
    // read-only or full disk does not stop the agent from starting.
    const { journal, state } = EventJournal.load(o.journalFile, o.journalFiles);
    this.epoch = journal.epoch;
    if (state.skipped > 0) this.log.warn({ skipped: state.skipped }, 'event journal had unreadable lines');
    if (state.pending.length > 0) this.log.info({ pending: state.pending.length, lastSeq: state.lastSeq }, 'unacknowledged events from the last run will be resent');
    ({ outbox: this.outbox, writer: this.journal } = journaledOutbox({ journal, state }, {
      log: this.log, ...(o.journalClock ? { clock: o.journalClock } : {}),
    }));
    this.convergence = new Convergence({
      manager: o.manager, log: this.log, ...(o.unknownDynoGraceMs !== undefined ? { graceMs: o.unknownDynoGraceMs } : {}),
      // A desired dyno this host cannot take is reported down with the refusal's code.
      refused: (spec, err) => this.queue(null, refusedStatus(spec, err)),
    });
    const hello = async (): Promise<Hello> => ({
      type: 'hello', protocol: PROTOCOL_VERSION, agent: o.identity, seqEpoch: this.epoch, capacity: await o.capacity(), dynos: o.manager.list(),
    });
    this.session = new LinkSession({
      ...o.dial, ...o.session, log: this.log, hello, capacity: o.capacity, outbox: this.outbox, journal: this.journal,
      handlers: buildHandlers({
        manager: o.manager, outbox: this.outbox, slugs: o.slugs,
        hostChanged: () => this.session.reportCapacitySoon(), claimed: (id) => this.convergence.claim(id),
        ...(o.commands ? { commands: o.commands } : {}),
      }),
      onWelcome: (welcome) => this.convergence.converge(welcome.desired),
      onLinkLost: () => this.convergence.cancel(),
    });
  }

  /** The manager's transition listener: every transition is an event, re-adoption reports
   * included. Never throws (the dyno that called it goes on to schedule its restart). */
  readonly transition = (from: DynoStateName | null, status: DynoStatus): void => {
    this.queue(from, status);
    try {
      this.session.reportCapacitySoon();
    } catch (err) {
      this.log.error({ err }, 'could not schedule a capacity report');
    }
  };

  /** A host notice from EC2 (agent/host/ec2/host-signals.ts): a journaled event like a dyno
   * transition, then a capacity report (its `notices` and `accepting`). Never throws. */
  readonly hostNotice = (notice: HostNotice): void => {
    try {
      this.session.sendEvent(this.outbox.pushNotice(notice));
      this.session.reportCapacitySoon();
    } catch (err) {
      this.log.error({ err, notice: notice.notice }, 'could not queue a host notice');
    }
  };

  /** A dyno's memory projected to reach R15 (dynos/memory-watch-hook.ts): a journaled event,
   * so the coordinator can start a replacement before the crash. Never throws (it is called
   * from the memory round). */
  readonly memoryWarning = (warning: MemoryWarning): void => {
    try {
      this.session.sendEvent(this.outbox.pushMemoryWarning(warning));
    } catch (err) {
      this.log.error({ err, dynoId: warning.dynoId }, 'could not queue a memory warning');
    }
  };

  /** Dials; until the welcome, events wait in the outbox. */
  start(): void {
    this.session.start();
  }

  status(): LinkStatus {
    return this.session.status();
  }

  /** Events the coordinator has not acknowledged, in order (diagnostics, tests). */
  unackedEvents(): readonly Event[] {
    return this.outbox.unacked();
  }

  /** Log batches go out only over a ready, unclogged link (session.ts). */
  trySendLogs(take: () => LogBatch | undefined): boolean {
    return this.session.trySendLogs(take);
  }

  reportCapacitySoon(): void {
    this.session.reportCapacitySoon();
  }

  /** Closes the link, then makes one last journal write (what a clean stop leaves on disk is
   * complete unless the disk is still failing, which was logged). */
  async close(): Promise<void> {
    this.convergence.cancel();
    await this.session.close();
    this.journal.close();
  }

  private queue(from: DynoStateName | null, status: DynoStatus): void {
    try {
      this.session.sendEvent(this.outbox.push(from, status));
    } catch (err) {
      // Nothing here touches the disk; this guards the invariant against a future change.
      this.log.error({ err, dynoId: status.id }, 'could not queue a dyno event');
    }
  }
}
