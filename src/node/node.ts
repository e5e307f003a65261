/**
 * A running server, the same in the daemon and in the simulator: the engine,
 * the application it feeds, the journal, and the one executor of the
 * engine's Ready. Only the ports (ports.ts) differ between those worlds.
 *
 * The executor's contract:
 *
 *   1. A Ready's records are appended to the journal and a sync is asked for
 *      when the Ready is taken.
 *   2. A Ready completes only once its records, and those of every Ready
 *      taken before it, are durable; Readys complete in the order taken.
 *   3. Completing a Ready: send its packets (they may carry or acknowledge
 *      its records: own messages, the clock, the seq vector), then confirm
 *      the sequenced submissions to their submitters (a confirmed operation
 *      is durable here and will be sent), then apply the order change and the
 *      stable messages to the application (stability may rest on the clock in
 *      those records), then report a view change.
 *
 * So clients are shown only what this server holds durably, and nothing a
 * crash can take back has left the process. An input (a packet, a tick, a
 * submission) changes the engine at once; the world runs step() soon after,
 * once per burst of inputs, so a burst costs one sync. While a slow disk
 * holds a Ready back, no other is taken (holding) and the status last sent
 * goes out again every status interval: it says nothing new, so peers keep
 * the server in their view (slow, not dead).
 */
import { Engine, type Ready, type Sequenced } from '../broadcast/engine.js';
import type { EngineOptions } from '../broadcast/options.js';
import type { EngineState } from '../broadcast/recovery.js';
import type { OrderChange } from '../broadcast/tentativeOrder.js';
import type { Message, Packet, ServerId, StatusVectors } from '../broadcast/types.js';
import { ChorusError } from '../errors.js';
import { durableFirst, type ExecutorParts, type ReadyEffects } from './executorParts.js';
import { recordPlace, type LoadedLog } from '../storage/logReader.js';
import type { Application, ApplicationFactory } from './application.js';
import type { Clock, Journal, Transport } from './ports.js';

const refusals = {
  busy: 'the server is overloaded: too many messages waiting to be sent; try again shortly',
  'too-large': 'the message is too large to broadcast',
  'not-unicode': 'the message is not well-formed Unicode (it holds a lone surrogate)',
  stopped: 'the server is shutting down',
  storage: 'the server cannot write its log files, so it accepts no operations until it is restarted',
} as const;

export type Refusal = keyof typeof refusals;

/** Why a submission will never be confirmed. */
export class SubmitRefused extends Error {
  constructor(
    readonly reason: Refusal,
    detail?: string,
  ) {
    super(detail === undefined ? refusals[reason] : `${refusals[reason]} (${detail})`);
    this.name = 'SubmitRefused';
  }
}

/** How a submitter learns what became of its payload: exactly one of the two is called, once. */
export interface SubmitOutcome {
  /** Durable here, with its (seq, ts): it will reach every server. */
  confirmed(message: Message): void;
  refused(error: SubmitRefused): void;
}

/** What a node reports as it goes, for logs, tests and the simulator's checks. */
export interface NodeEvents {
  /** An own message got its (seq, ts), when the Ready is taken (before it is durable). */
  sequenced?(message: Message): void;
  /** An own message was confirmed to its submitter, `submittedAt` (clock time) after it was submitted. */
  confirmed?(message: Message, submittedAt: number): void;
  /** The application was given an order change and newly stable messages. */
  applied?(ordered: OrderChange | undefined, stable: readonly Message[]): void;
  view?(view: readonly ServerId[]): void;
  /** The journal cannot be written: the node accepts nothing more (see storageFailed). */
  storageFailed?(error: ChorusError): void;
}

export interface NodeOptions {
  readonly engine: EngineOptions;
  /** Write a snapshot (and start a new journal) once the journal reaches this size, or the last snapshot's if larger. */
  readonly snapshotJournalBytes: number;
  /** Also snapshot once nothing was journaled for this long, so an idle server's files shrink (a busy one snapshots by size). */
  readonly snapshotIntervalMs: number;
  /** When a Ready's effects go out: the contract's (durableFirst) unless a test plants a bug (TEST ONLY). */
  readonly executor?: ExecutorParts;
}

export const defaultSnapshotJournalBytes = 16 * 1024 * 1024;
export const defaultSnapshotIntervalMs = 30_000;

export interface NodeSetup {
  readonly options: NodeOptions;
  /** The log files' content: the snapshot and the journal after it. */
  readonly loaded: LoadedLog;
  readonly journal: Journal;
  readonly transport: Transport;
  readonly clock: Clock;
  readonly application: ApplicationFactory;
  readonly events?: NodeEvents;
}

/** What tools and tests may read of the engine (never its ready()). */
export type ProtocolView = Pick<
  Engine,
  | 'options'
  | 'view'
  | 'clock'
  | 'stableTs'
  | 'stableEverywhereTs'
  | 'seqVector'
  | 'tsVector'
  | 'seqMatrix'
  | 'tsMatrix'
  | 'unstableCount'
  | 'storeCount'
  | 'queuedCount'
  | 'bufferedCount'
  | 'counters'
  | 'tentative'
  | 'exportState'
>;

/** A Ready waiting to complete. */
interface Batch {
  readonly ready: Ready;
  /** Run once this batch has completed. */
  readonly after: (() => void)[];
  durable: boolean;
  readonly takenAt: number;
}

export class Node {
  private readonly journal: Journal;
  private readonly transport: Transport;
  private readonly clock: Clock;
  private readonly events: NodeEvents;
  private readonly batches: Batch[] = [];
  private readonly waiting = new Map<number, { outcome: SubmitOutcome; at: number }>();
  private nextTag = 1;
  private state: 'running' | 'stopping' | 'stopped' | 'failed' = 'running';
  /** A clean stop waits for the Readys taken to complete; then this runs. */
  private stopped: ((error?: Error) => void) | undefined;
  /**
   * The journal is full: the engine's state as of the last Ready taken, to
   * be written as the snapshot once that Ready completes (so the snapshot
   * and the application agree); no Ready is taken meanwhile.
   */
  private snapshotAfter: EngineState | undefined;
  private failure: string | undefined;
  private lastJournaledAt: number;
  private readonly executor: ExecutorParts;
  private readonly effects: ReadyEffects = {
    send: (ready) => this.send(ready),
    confirm: (ready) => this.confirm(ready.sequenced),
    apply: (ready) => this.apply(ready),
  };
  /**
   * The stable point the application has been brought to: the engine's, as
   * of the last Ready applied. Until a Ready is durable its messages are not
   * applied, so the engine's own stable point may be ahead of what the
   * application holds; clients are shown this one.
   */
  private appliedStable: number;
  /** The status vectors last sent (alone or on data): durable here, so safe to send again. */
  private lastStatusSent: StatusVectors | undefined;
  private lastResentAt = -Infinity;
  /** Inputs came while holding: they get their step once the disk lets go. */
  private inputsHeld = false;

  private constructor(
    private readonly setup: NodeSetup,
    private readonly engine: Engine,
    readonly app: Application,
  ) {
    this.journal = setup.journal;
    this.transport = setup.transport;
    this.clock = setup.clock;
    this.events = setup.events ?? {};
    this.lastJournaledAt = this.clock.now();
    this.executor = setup.options.executor ?? durableFirst;
    this.appliedStable = setup.loaded.snapshot?.engine.stableTs ?? 0;
  }

  /**
   * Rebuild a server from its log files and take the first step, which hands
   * the recovered tentative order to the application. A journal record that
   * does not fit is a LOG_CORRUPT error naming its file and line.
   */
  static recover(setup: NodeSetup): Node {
    const { loaded } = setup;
    const recovered = Engine.recover(setup.options.engine, setup.clock.now(), loaded.snapshot?.engine, loaded.records);
    if ('badRecord' in recovered) {
      throw new ChorusError('LOG_CORRUPT', `${recordPlace(loaded, recovered.badRecord)}: ${recovered.reason}`);
    }
    const node = new Node(setup, recovered.engine, setup.application(loaded.snapshot?.app));
    node.step();
    return node;
  }

  get protocol(): ProtocolView {
    return this.engine;
  }

  get id(): ServerId {
    return this.engine.options.me;
  }

  get view(): readonly ServerId[] {
    return this.engine.view;
  }

  /** The stable point of what the application holds (the engine's may be ahead until a Ready is durable). */
  get appliedStableTs(): number {
    return this.appliedStable;
  }

  /** Why the log files could not be written; once set, the node sends, confirms and applies nothing more. */
  get storageError(): string | undefined {
    return this.failure;
  }

  // ---- inputs -------------------------------------------------------------------

  /** Broadcast a payload, timestamped above `after`; `outcome` learns when it is durable here, or why it never will be. */
  submit(payload: string, outcome: SubmitOutcome, after = 0): void {
    if (this.state === 'failed') return outcome.refused(new SubmitRefused('storage', this.failure));
    if (this.state !== 'running') return outcome.refused(new SubmitRefused('stopped'));
    const tag = this.nextTag++;
    const result = this.engine.broadcast(payload, tag, this.clock.now(), after);
    if (result !== 'accepted') return outcome.refused(new SubmitRefused(result));
    this.waiting.set(tag, { outcome, at: this.clock.now() });
    this.stepSoon();
  }

  /** A packet from a peer, decoded and checked by the transport. */
  receive(packet: Packet): void {
    if (this.state !== 'running') return;
    this.engine.receive(packet, this.clock.now());
    this.stepSoon();
  }

  /**
   * The time asked for with wakeAt has come. The step runs soon, like any
   * input's: after the packets already waiting, so a server that was busy
   * reads what arrived meanwhile before it judges a gap stalled.
   */
  tick(): void {
    if (this.state !== 'running') return;
    this.engine.tick(this.clock.now());
    this.clock.stepSoon();
  }

  // ---- the executor -------------------------------------------------------------

  /**
   * While the disk holds a Ready back (or a full journal waits for its
   * snapshot), no Ready is taken: the inputs meanwhile go into one Ready once
   * it is durable, as group commit would batch them anyway, and an input costs
   * no step. Ticks go on, so that the status is sent again while the disk is slow.
   */
  private holding(): boolean {
    return this.snapshotAfter !== undefined || this.batches.length > 0;
  }

  private stepSoon(): void {
    if (this.holding()) this.inputsHeld = true;
    else this.clock.stepSoon();
  }

  /** Take the engine's Ready and act on it as the contract above says; then snapshot if due. */
  step(): void {
    if (this.state !== 'running') return;
    this.resendStatusWhileWaiting(this.clock.now());
    if (this.holding()) return this.clock.wakeAt(this.clock.now() + this.engine.options.statusIntervalMs);
    const ready = this.engine.ready();
    if (!isEmpty(ready)) this.begin(ready);
    if (this.state !== 'running') return;
    if (this.journal.snapshotInProgress) this.continueSnapshot();
    else if (this.journalFull()) this.snapshotWhenComplete();
    else if (this.snapshotDue()) this.beginSnapshot(this.engine.exportState());
    this.clock.wakeAt(this.engine.nextDeadline());
  }

  private begin(ready: Ready): void {
    for (const { message } of ready.sequenced) this.events.sequenced?.(message);
    const batch: Batch = { ready, after: [], durable: ready.records.length === 0, takenAt: this.clock.now() };
    this.batches.push(batch);
    this.executor.beforeDurable(ready, this.effects);
    if (batch.durable) return this.completeDurable();
    this.journal.append(ready.records);
    this.lastJournaledAt = this.clock.now();
    this.journal.sync((error) => (error ? this.storageFailed(error) : this.durable(batch)));
  }

  /** `batch`'s records are durable, and so are those of every batch before it. */
  private durable(batch: Batch): void {
    for (const b of this.batches) {
      b.durable = true;
      if (b === batch) break;
    }
    this.completeDurable();
    if (!this.inputsHeld || this.holding()) return;
    this.inputsHeld = false;
    this.clock.stepSoon();
  }

  private completeDurable(): void {
    while (this.completing() && this.batches.length > 0 && this.batches[0].durable) this.complete(this.batches.shift()!);
    if (!this.settled()) return;
    if (this.state === 'stopping') return this.finishStop();
    const engine = this.snapshotAfter;
    if (this.state !== 'running' || !engine) return;
    this.snapshotAfter = undefined;
    this.beginSnapshot(engine);
  }

  /** Batches complete while running, and while a clean stop waits for them. */
  private completing(): boolean {
    return this.state === 'running' || this.state === 'stopping';
  }

  private complete(batch: Batch): void {
    const { ready } = batch;
    this.executor.afterDurable(ready, this.effects);
    if (ready.view) {
      this.app.viewChanged(ready.view);
      this.events.view?.(ready.view);
    }
    for (const action of batch.after) action();
  }

  /** Run `action` once every Ready taken so far has completed (at once if they all have). */
  afterCompleted(action: () => void): void {
    const last = this.batches[this.batches.length - 1];
    if (last) last.after.push(action);
    else action();
  }

  /** The Ready's packets, each to all its receivers at once (the engine lists a packet for several servers one after another). */
  private send(ready: Ready): void {
    const { packets } = ready;
    for (let i = 0; i < packets.length; ) {
      const { packet } = packets[i];
      const to: ServerId[] = [];
      for (; i < packets.length && packets[i].packet === packet; i++) to.push(packets[i].to);
      this.transport.send(to, packet);
      if (packet.type === 'status') this.lastStatusSent = packet;
      else if (packet.type === 'data' && packet.status) this.lastStatusSent = packet.status;
    }
  }

  /**
   * The disk has held the oldest Ready back for a status interval: send the
   * last status again (what it says was durable when it was first sent), so
   * that peers still hear from this server. Any status may arrive late or
   * twice over UDP, so an old one is safe.
   */
  private resendStatusWhileWaiting(now: number): void {
    const oldest = this.batches[0];
    const status = this.lastStatusSent;
    const { me, serverCount, statusIntervalMs } = this.engine.options;
    if (!oldest || oldest.durable || !status || now - oldest.takenAt < statusIntervalMs || now - this.lastResentAt < statusIntervalMs) return;
    this.lastResentAt = now;
    const packet: Packet = { type: 'status', from: me, seqVector: status.seqVector, tsVector: status.tsVector };
    const others: ServerId[] = [];
    for (let to = 1; to <= serverCount; to++) if (to !== me) others.push(to);
    this.transport.send(others, packet);
  }

  private confirm(sequenced: readonly Sequenced[]): void {
    for (const { tag, message } of sequenced) {
      const waiting = this.waiting.get(tag);
      if (!waiting) continue;
      this.waiting.delete(tag);
      waiting.outcome.confirmed(message);
      this.events.confirmed?.(message, waiting.at);
    }
  }

  private apply(ready: Ready): void {
    this.appliedStable = ready.stableTs;
    if (!ready.ordered && ready.stable.length === 0) return;
    this.app.apply(ready.ordered, ready.stable);
    this.events.applied?.(ready.ordered, ready.stable);
  }

  // ---- snapshots ------------------------------------------------------------------

  /** Snapshot now, if everything is durable (else false: try again later). */
  snapshot(): boolean {
    this.step();
    if (this.state !== 'running' || !this.settled()) return false;
    this.writeSnapshot(this.engine.exportState());
    return this.state === 'running';
  }

  /** Every Ready taken is durable and completed: the engine's state is what the log files and the application hold. */
  private settled(): boolean {
    return this.batches.length === 0 && this.journal.idle;
  }

  /** A full journal is replaced by a snapshot begun now if everything is durable, else once the last Ready taken completes. */
  private snapshotWhenComplete(): void {
    if (this.settled()) this.beginSnapshot(this.engine.exportState());
    else this.snapshotAfter = this.engine.exportState();
  }

  /**
   * The journal is replaced by a snapshot once it is as large as the last
   * snapshot (and at least snapshotJournalBytes): snapshots then cost at most
   * about as much as the journal writes, however long the history, and a
   * restart replays a journal no larger than the snapshot it loads.
   */
  private journalFull(): boolean {
    return this.journal.journalBytes >= Math.max(this.setup.options.snapshotJournalBytes, this.journal.snapshotBytes);
  }

  /** An idle server's journal is replaced by a snapshot after a while (a full one, in step()). */
  private snapshotDue(): boolean {
    if (!this.settled()) return false;
    return this.journal.journalRecords > 0 && this.clock.now() - this.lastJournaledAt >= this.setup.options.snapshotIntervalMs;
  }

  private writeSnapshot(engine: EngineState): void {
    this.storing(() => this.journal.writeSnapshot(engine, this.app.snapshot()));
  }

  /**
   * Begin a snapshot of this state, written a slice per step (continueSnapshot)
   * so that no step is blocked by the whole state; the steps go on meanwhile.
   */
  private beginSnapshot(engine: EngineState): void {
    const done = (error?: ChorusError) => (error ? this.storageFailed(error) : this.clock.stepSoon());
    this.storing(() => {
      const app = this.app.snapshotInBackground?.() ?? { state: this.app.snapshot(), durable: (ready: () => void) => ready() };
      this.journal.beginSnapshot(engine, app.state, done, app.durable);
    });
    this.clock.stepSoon();
  }

  private continueSnapshot(): void {
    this.storing(() => {
      if (this.journal.continueSnapshot()) this.clock.stepSoon();
    });
  }

  /** Run a write to the log files; if they cannot be written, the node fails as storageFailed says. */
  private storing(write: () => void): void {
    try {
      write();
    } catch (err) {
      if (err instanceof ChorusError && err.code === 'STORAGE_FAILED') this.storageFailed(err);
      else throw err;
    }
  }

  // ---- ending -------------------------------------------------------------------------

  /**
   * Clean stop: a last step; once every Ready taken is durable and completed
   * (their submissions confirmed), a snapshot and the files closed, then
   * `done`. Submissions not yet sequenced are refused.
   */
  stop(done: (error?: Error) => void): void {
    if (this.state === 'failed') {
      this.state = 'stopped';
      this.journal.abandon();
      return done();
    }
    if (this.state !== 'running') return done();
    this.step();
    if (this.state !== 'running') return this.stop(done);
    this.state = 'stopping';
    this.stopped = done;
    if (this.settled()) this.finishStop();
  }

  private finishStop(): void {
    const done = this.dropPending()!;
    this.state = 'stopped';
    this.refuseWaiting(new SubmitRefused('stopped'));
    const snapshotError = attempt(() => this.journal.writeSnapshot(this.engine.exportState(), this.app.snapshot()));
    const closeError = attempt(() => this.journal.close());
    done(snapshotError ?? closeError);
  }

  /** Stop as a crash would: nothing pending is written, no snapshot. */
  crash(): void {
    if (this.state === 'stopped') return;
    const stopping = this.dropPending();
    this.state = 'stopped';
    this.batches.length = 0;
    this.refuseWaiting(new SubmitRefused('stopped'));
    this.journal.abandon();
    stopping?.(new Error('the server stopped as a crash would while a clean stop waited for its disk'));
  }

  /**
   * The log files cannot be written (a full disk, a read-only file system).
   * What the engine produced since the last durable write must never leave
   * the node: no packet is sent, no operation confirmed or applied. To its
   * peers the server has crashed; to its clients it refuses every operation
   * until it is restarted, and recovers from the files, which hold everything
   * it ever confirmed.
   */
  private storageFailed(error: ChorusError): void {
    if (!this.completing()) return;
    const stopped = this.dropPending();
    this.state = 'failed';
    this.failure = error.message;
    this.batches.length = 0;
    this.refuseWaiting(new SubmitRefused('storage', error.message));
    this.events.storageFailed?.(error);
    if (stopped) this.stop(stopped);
  }

  /** Forget a snapshot waiting for its Ready, and hand back a clean stop's callback if one waits. */
  private dropPending(): ((error?: Error) => void) | undefined {
    const stopped = this.stopped;
    this.stopped = undefined;
    this.snapshotAfter = undefined;
    return stopped;
  }

  private refuseWaiting(error: SubmitRefused): void {
    const outcomes = [...this.waiting.values()];
    this.waiting.clear();
    for (const { outcome } of outcomes) outcome.refused(error);
  }
}

/** Run `action`; what it threw, if anything. */
function attempt(action: () => void): Error | undefined {
  try {
    action();
    return undefined;
  } catch (err) {
    return err as Error;
  }
}

function isEmpty(ready: Ready): boolean {
  return ready.records.length === 0 && ready.packets.length === 0 && ready.sequenced.length === 0 && ready.stable.length === 0 && !ready.ordered && !ready.view;
}
