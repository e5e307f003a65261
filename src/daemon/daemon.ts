/**
 * The daemon: a thin shell around the engine. It owns the socket, the log
 * files, the timer and the logger, and acts on each Ready in the order the
 * engine's contract demands: persist (group commit), then send, then
 * acknowledge, then apply.
 *
 * Inputs are handled as they come; the Ready is taken once per turn of the
 * event loop (setImmediate), so a burst of datagrams costs one fsync.
 */
import { EventEmitter } from 'node:events';
import type winston from 'winston';
import { Engine, type EngineCounters, type Ready } from '../broadcast/engine.js';
import { engineOptions, type EngineOptions, type EngineTimers } from '../broadcast/options.js';
import type { OrderChange } from '../broadcast/orderedLog.js';
import type { Message, Packet, ServerId } from '../broadcast/types.js';
import { allOnLoopback, serverById, type ClusterConfig } from '../config/clusterConfig.js';
import { ChorusError } from '../errors.js';
import { LogFiles, type LoadedLog } from '../storage/logFiles.js';
import type { FaultFilter, FaultSettings } from '../transport/faults.js';
import { UdpTransport, type DropReason, type TransportCounters } from '../transport/udpTransport.js';
import { loopbackDatagramBytes, networkDatagramBytes, receiveLimitBytes } from '../wire/codec.js';
import { OrderDigest, type Application, type ApplicationFactory } from './application.js';


export interface DaemonOptions {
  readonly id: ServerId;
  readonly config: ClusterConfig;
  readonly dataDir: string;
  readonly logger: winston.Logger;
  /** Signs and checks every datagram (config/clusterKey.ts); empty only with --insecure. */
  readonly clusterKey: Buffer;
  readonly timers?: Partial<EngineTimers>;
  /** Default: 32 KiB when every server is on loopback, else 1400 bytes (no IP fragmentation). */
  readonly maxDatagramBytes?: number;
  /** Write a snapshot (and start a new journal) once the journal reaches this size. */
  readonly snapshotJournalBytes?: number;
  /** Also snapshot after this long if anything was journaled, so an idle daemon's files shrink. */
  readonly snapshotIntervalMs?: number;
  readonly application?: ApplicationFactory;
  /** Injected faults to apply from the first datagram (they survive relaunches). */
  readonly faults?: FaultSettings;
}

export const defaultSnapshotJournalBytes = 16 * 1024 * 1024;
export const defaultSnapshotIntervalMs = 30_000;
/** At most one warning per drop reason in this period; the counters keep the exact numbers. */
const dropWarningIntervalMs = 5_000;

const refusals = {
  busy: 'the server is overloaded: too many messages waiting to be sent; try again shortly',
  'too-large': 'the message is too large to broadcast',
  stopped: 'the server is shutting down',
  storage: 'the server cannot write its log files, so it accepts no operations until it is restarted',
} as const;

export class BroadcastRefused extends Error {
  constructor(
    readonly reason: keyof typeof refusals,
    detail?: string,
  ) {
    super(detail === undefined ? refusals[reason] : `${refusals[reason]} (${detail})`);
    this.name = 'BroadcastRefused';
  }
}

export interface DaemonStatus {
  id: ServerId;
  pid: number;
  view: readonly ServerId[];
  clock: number;
  seqVector: readonly number[];
  tsVector: readonly number[];
  seqMatrix: readonly (readonly number[])[];
  tsMatrix: readonly (readonly number[])[];
  stableTs: number;
  stableEverywhereTs: number;
  unstable: number;
  retained: number;
  queued: number;
  buffered: number;
  digest: string;
  /** This run of the daemon, as named in its datagrams. */
  incarnation: number;
  /** Set when the log files could not be written: the daemon then accepts nothing until restarted. */
  storageError?: string;
  engine: EngineCounters;
  transport: TransportCounters;
  journal: { bytes: number; records: number; syncs: number };
}

export interface DaemonEvents {
  ordered: [OrderChange];
  stable: [readonly Message[]];
  view: [readonly ServerId[]];
  fatal: [Error];
}

const now = (): number => performance.now();

export class Daemon extends EventEmitter<DaemonEvents> {
  readonly id: ServerId;
  readonly app: Application;
  private readonly logger: winston.Logger;
  private readonly pending = new Map<number, { resolve: (m: Message) => void; reject: (err: Error) => void }>();
  private nextTag = 1;
  private drainScheduled = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Why the log files cannot be written; once set, nothing is written, sent or acknowledged again. */
  private storageError: string | undefined;
  private lastSnapshotAt = now();
  private readonly lastDropWarningAt = new Map<DropReason, number>();
  private lastInconsistentWarningAt = -Infinity;
  private transport!: UdpTransport;

  private constructor(
    private readonly options: DaemonOptions,
    private engine: Engine,
    private readonly files: LogFiles,
    app: Application,
  ) {
    super();
    this.id = options.id;
    this.logger = options.logger;
    this.app = app;
  }

  static async start(options: DaemonOptions): Promise<Daemon> {
    const { id, config, logger } = options;
    const me = serverById(config, id);
    const engineSettings = engineOptions(id, config.servers.length, options.timers);
    const maxDatagramBytes = options.maxDatagramBytes ?? (allOnLoopback(config) ? loopbackDatagramBytes : networkDatagramBytes);
    const { files, loaded } = LogFiles.open(options.dataDir, id, config.servers.length);
    let daemon: Daemon;
    try {
      const engine = Daemon.recoverEngine(engineSettings, loaded);
      const app = (options.application ?? ((saved) => new OrderDigest(saved)))(loaded.snapshot?.app);
      daemon = new Daemon(options, engine, files, app);
      if (loaded.tornTail) {
        logger.warn(`dropped a torn last line of ${loaded.journalFile} (line ${loaded.tornTail.line}, ${loaded.tornTail.bytes} bytes): a crash cut it short before it was durable`);
      }
      daemon.transport = await UdpTransport.open(
        me,
        { incarnation: files.incarnation, key: options.clusterKey, maxReceiveBytes: receiveLimitBytes(maxDatagramBytes), maxDatagramBytes },
        config.servers,
        (packet) => daemon.onPacket(packet),
        (reason, detail, from) => daemon.onDrop(reason, detail, from),
      );
      if (options.faults) daemon.setFaults(options.faults);
    } catch (err) {
      files.abandon();
      throw err;
    }
    const state = daemon.engine;
    if (loaded.snapshot || loaded.records.length > 0) {
      logger.info(
        `recovered from ${options.dataDir}: snapshot generation ${loaded.generation}${loaded.snapshot ? '' : ' (none)'}, ` +
          `${loaded.records.length} journal records; own seq ${state.seqVector[id - 1]}, clock ${state.clock}, ` +
          `stable point ${state.stableTs}, ${state.storeCount} messages retained, ${state.unstableCount} tentative`,
      );
    }
    logger.info(
      `started server ${id} of ${config.servers.length}: UDP ${me.host}:${me.udpPort}, data ${options.dataDir}, ` +
        `datagrams up to ${maxDatagramBytes} bytes`,
    );
    daemon.drain();
    return daemon;
  }

  private static recoverEngine(engineOptions: EngineOptions, loaded: LoadedLog): Engine {
    const recovered = Engine.recover(engineOptions, now(), loaded.snapshot?.engine, loaded.records);
    if ('engine' in recovered) return recovered.engine;
    throw new ChorusError('LOG_CORRUPT', `${loaded.journalFile}:${loaded.recordLines[recovered.badRecord]}: ${recovered.reason}`);
  }

  // ---- the application's interface ------------------------------------------------

  /** Broadcast a payload; resolves with its (seq, ts) once it is durable here. */
  broadcast(payload: string): Promise<Message> {
    if (this.storageError !== undefined) return Promise.reject(new BroadcastRefused('storage', this.storageError));
    if (this.stopped) return Promise.reject(new BroadcastRefused('stopped'));
    const tag = this.nextTag++;
    const result = this.engine.broadcast(payload, tag, now());
    if (result !== 'accepted') return Promise.reject(new BroadcastRefused(result));
    const promise = new Promise<Message>((resolve, reject) => this.pending.set(tag, { resolve, reject }));
    this.scheduleDrain();
    return promise;
  }

  get view(): readonly ServerId[] {
    return this.engine.view;
  }

  /** Injected network faults of this daemon (partitions, loss). */
  get faults(): FaultFilter {
    return this.transport.faults;
  }

  /** Inject faults (or clear them with empty settings), and say so in the log. */
  setFaults(settings: FaultSettings): void {
    this.transport.faults.set(settings);
    const parts = [
      settings.blocked.length > 0 ? `cut off from {${settings.blocked.join(',')}}` : '',
      ...Object.entries(settings.lossTo).map(([to, p]) => `dropping ${Math.round(p * 100)}% to ${to}`),
      ...Object.entries(settings.lossFrom).map(([from, p]) => `dropping ${Math.round(p * 100)}% from ${from}`),
    ].filter((p) => p !== '');
    if (parts.length === 0) this.logger.info('injected faults cleared');
    else this.logger.warn(`injected faults: ${parts.join(', ')}`);
  }

  /** Messages not yet stable, in the current total order. */
  tentative(): Message[] {
    return this.engine.tentative();
  }

  /** The daemon's state for tools; `withDigest: false` skips hashing the application state (for frequent polls). */
  status(withDigest = true): DaemonStatus {
    const e = this.engine;
    return {
      id: this.id,
      pid: process.pid,
      view: e.view,
      clock: e.clock,
      seqVector: e.seqVector,
      tsVector: e.tsVector,
      seqMatrix: e.seqMatrix,
      tsMatrix: e.tsMatrix,
      stableTs: e.stableTs,
      stableEverywhereTs: e.stableEverywhereTs,
      unstable: e.unstableCount,
      retained: e.storeCount,
      queued: e.queuedCount,
      buffered: e.bufferedCount,
      digest: withDigest ? this.app.digest() : '',
      incarnation: this.files.incarnation,
      ...(this.storageError === undefined ? {} : { storageError: this.storageError }),
      engine: { ...e.counters },
      transport: structuredClone(this.transport.counters),
      journal: { bytes: this.files.journalBytes, records: this.files.journalRecords, syncs: this.files.syncs },
    };
  }

  /** Clean shutdown: finish the current step, snapshot, close the socket and the files. */
  async stop(): Promise<void> {
    if (this.storageError !== undefined) {
      this.files.abandon();
      this.logger.info(`stopped server ${this.id}; its log files hold everything up to the storage failure`);
      return;
    }
    if (this.stopped) return;
    this.drain();
    this.stopped = true;
    clearTimeout(this.timer);
    this.rejectPending(new BroadcastRefused('stopped'));
    await this.transport.close();
    try {
      this.files.writeSnapshot(this.engine.exportState(), this.app.snapshot());
    } finally {
      this.files.close();
    }
    this.logger.info(`stopped server ${this.id} cleanly`);
  }

  /** Stop as a crash would: nothing pending is written, no snapshot. For tests. */
  async crash(): Promise<void> {
    if (this.storageError !== undefined) return this.files.abandon();
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    this.rejectPending(new BroadcastRefused('stopped'));
    await this.transport.close();
    this.files.abandon();
  }

  // ---- event handling -----------------------------------------------------------------

  private onPacket(packet: Packet): void {
    if (this.stopped) return;
    if (this.logger.isDebugEnabled()) this.logger.debug(`recv ${describePacket(packet)}`);
    const inconsistentBefore = this.engine.counters.inconsistent;
    this.engine.receive(packet, now());
    if (this.engine.counters.inconsistent > inconsistentBefore) this.warnInconsistent(packet.from);
    this.scheduleDrain();
  }

  /** Only a faulty server holding the cluster key sends these; say so, at most every few seconds. */
  private warnInconsistent(from: ServerId): void {
    const at = now();
    if (at - this.lastInconsistentWarningAt < dropWarningIntervalMs) return;
    this.lastInconsistentWarningAt = at;
    this.logger.error(
      `refused messages relayed by server ${from} that no correct server could have sent (timestamp not after the sender's previous, or behind the stable point); ` +
        `${this.engine.counters.inconsistent} so far: is a server faulty?`,
    );
  }

  private onDrop(reason: DropReason, detail: string, from: string): void {
    // Stale datagrams are expected for a moment after any server restarts; the counter still shows them.
    if (reason === 'stale') return;
    const at = now();
    const last = this.lastDropWarningAt.get(reason) ?? -Infinity;
    if (at - last < dropWarningIntervalMs) return;
    this.lastDropWarningAt.set(reason, at);
    this.logger.warn(`dropped a datagram from ${from}: ${reason} (${detail}); ${this.transport.counters.dropped[reason]} dropped for this reason so far`);
  }

  private scheduleDrain(): void {
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    setImmediate(() => this.drain());
  }

  private onTimer(): void {
    if (this.stopped) return;
    this.engine.tick(now());
    this.drain();
  }

  private drain(): void {
    this.drainScheduled = false;
    if (this.stopped) return;
    try {
      this.act(this.engine.ready());
      if (this.snapshotDue()) this.snapshot();
      this.armTimer();
    } catch (err) {
      if (err instanceof ChorusError && err.code === 'STORAGE_FAILED') this.storageFailed(err);
      else this.fail(err as Error);
    }
  }

  private snapshotDue(): boolean {
    if (this.files.journalBytes >= (this.options.snapshotJournalBytes ?? defaultSnapshotJournalBytes)) return true;
    return this.files.journalRecords > 0 && now() - this.lastSnapshotAt >= (this.options.snapshotIntervalMs ?? defaultSnapshotIntervalMs);
  }

  /** The Ready contract: persist, then send, then acknowledge, then apply. */
  private act(ready: Ready): void {
    if (ready.records.length > 0) {
      this.files.append(ready.records);
      this.files.sync();
    }
    const debug = this.logger.isDebugEnabled();
    for (const { to, packet } of ready.packets) {
      if (debug) this.logger.debug(`send to ${to}: ${describePacket(packet)}`);
      this.transport.send(to, packet);
    }
    for (const { tag, message } of ready.sequenced) {
      this.pending.get(tag)?.resolve(message);
      this.pending.delete(tag);
    }
    if (ready.ordered || ready.stable.length > 0) this.app.apply(ready.ordered, ready.stable);
    if (ready.view) {
      this.logger.info(`view changed: {${ready.view.join(',')}}`);
      this.app.viewChanged(ready.view);
      this.emit('view', ready.view);
    }
    if (ready.ordered) this.emit('ordered', ready.ordered);
    if (ready.stable.length > 0) this.emit('stable', ready.stable);
  }

  private snapshot(): void {
    this.files.writeSnapshot(this.engine.exportState(), this.app.snapshot());
    this.lastSnapshotAt = now();
  }

  private armTimer(): void {
    clearTimeout(this.timer);
    const delay = Math.min(Math.max(this.engine.nextDeadline() - now(), 0), this.engine.options.statusIntervalMs);
    this.timer = setTimeout(() => this.onTimer(), delay);
  }

  /**
   * The log files cannot be written (a full disk, a read-only file system).
   * What the engine produced since the last durable write must never leave
   * this process: no packet is sent, no operation acknowledged or applied.
   * To its peers the daemon has crashed; to its clients it answers every
   * operation with this error until it is restarted, and recovers from the
   * files, which hold everything it ever acknowledged.
   */
  private storageFailed(err: ChorusError): void {
    this.storageError = err.message;
    this.logger.error(`${err.message}; accepting no operations until restarted (fix the disk, then tools/cluster kill ${this.id} and relaunch ${this.id})`);
    this.stopped = true;
    clearTimeout(this.timer);
    this.rejectPending(new BroadcastRefused('storage', err.message));
    void this.transport.close().catch(() => undefined);
  }

  /** An invariant broke: stop at once; restart and recovery are the designed path. */
  private fail(err: Error): void {
    this.logger.error(`stopping: ${err.message}`);
    this.stopped = true;
    clearTimeout(this.timer);
    this.rejectPending(err);
    void this.transport.close().catch(() => undefined);
    try {
      this.files.abandon();
    } catch {
      // The files are already unusable; the error above says why.
    }
    this.emit('fatal', err);
  }

  private rejectPending(err: Error): void {
    for (const { reject } of this.pending.values()) reject(err);
    this.pending.clear();
  }
}

function describePacket(packet: Packet): string {
  switch (packet.type) {
    case 'data':
      return `data from ${packet.from}: ${packet.messages.map((m) => `${m.sender}:${m.seq}@${m.ts}`).join(' ')}`;
    case 'status':
      return `status from ${packet.from}: seq [${packet.seqVector.join(',')}] ts [${packet.tsVector.join(',')}]`;
    case 'nack':
      return `nack from ${packet.from}: ${packet.sender}:${packet.fromSeq}-${packet.toSeq}`;
  }
}
