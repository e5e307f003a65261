/**
 * The daemon: the node core (src/node/node.ts) in the real world. It owns
 * the UDP socket, the log files on the real disk, the event loop's timers
 * and the logger; the node owns everything else, the executor included.
 *
 * Inputs are handed to the node as they come; its step runs once per turn
 * of the event loop (setImmediate), so a burst of datagrams costs one fsync.
 */
import { EventEmitter } from 'node:events';
import type winston from 'winston';
import type { EngineCounters } from '../broadcast/engine.js';
import { engineOptions, type EngineTimers } from '../broadcast/options.js';
import type { OrderChange } from '../broadcast/tentativeOrder.js';
import type { Message, Packet, ServerId } from '../broadcast/types.js';
import { allOnLoopback, serverById, type ClusterConfig } from '../config/clusterConfig.js';
import { ChorusError } from '../errors.js';
import { OrderDigest, type ApplicationFactory } from '../node/application.js';
import { defaultSnapshotIntervalMs, defaultSnapshotJournalBytes, Node, type NodeEvents } from '../node/node.js';
import type { Clock, Journal, Transport } from '../node/ports.js';
import { journalSyncs, nodeFileSystem, type FileSystem } from '../storage/fileSystem.js';
import { LogFiles } from '../storage/logFiles.js';
import { describeFaults, type FaultFilter, type FaultSettings } from '../transport/faults.js';
import { UdpTransport, type DropReason, type TransportCounters } from '../transport/udpTransport.js';
import { loopbackDatagramBytes, networkDatagramBytes, receiveLimitBytes } from '../wire/codec.js';
import { DaemonTimings, type Timings } from './timings.js';

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
  /** Write a snapshot (and start a new journal) once the journal reaches this size, or the last snapshot's if larger. */
  readonly snapshotJournalBytes?: number;
  /** Also snapshot after this long if anything was journaled, so an idle daemon's files shrink. */
  readonly snapshotIntervalMs?: number;
  readonly application?: ApplicationFactory;
  /** The disk the log files live on; default the real one (the benchmark's protocol-only phase also runs without fsync). */
  readonly fileSystem?: FileSystem;
  /** Injected faults to apply from the first datagram (they survive relaunches). */
  readonly faults?: FaultSettings;
}

/** At most one warning per drop reason in this period; the counters keep the exact numbers. */
const dropWarningIntervalMs = 5_000;

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
  /** Event-loop delay and group-commit times since the last reset (control method `timings`). */
  timings: Timings;
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
  private readonly logger: winston.Logger;
  /** The log level is set at start (--log-level debug logs every packet): asked once, not for every datagram (winston's check allocates). */
  private readonly logsPackets: boolean;
  private stepScheduled = false;
  readonly timings = new DaemonTimings();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Stops telling the log when the disk is found slow (the journal's syncs then run off the event loop), or fast again. */
  private readonly unwatchDisk = journalSyncs.onNews((news) =>
    news.disk === 'slow'
      ? this.logger.warn(`the disk is slow (an fdatasync took ${Math.round(news.tookMs)} ms): the journal's syncs run off the event loop until it is fast again; appends wait for it, everything else goes on`)
      : this.logger.info("the disk is fast again: the journal's syncs run on the event loop"),
  );
  private readonly lastDropWarningAt = new Map<DropReason, number>();
  private lastInconsistentWarningAt = -Infinity;
  private transport!: UdpTransport;
  private core!: Node;
  private statusIntervalMs = 0;
  /** What the "started" line says (announceStarted). */
  private startedText = '';

  private constructor(
    private readonly options: DaemonOptions,
    private readonly files: LogFiles,
  ) {
    super();
    this.id = options.id;
    this.logger = options.logger;
    this.logsPackets = options.logger.isDebugEnabled();
  }

  static async start(options: DaemonOptions): Promise<Daemon> {
    const { id, config, logger } = options;
    // The journal's sync thread boots while the data directory is read.
    if (!options.fileSystem) journalSyncs.start();
    const me = serverById(config, id);
    const maxDatagramBytes = options.maxDatagramBytes ?? (allOnLoopback(config) ? loopbackDatagramBytes : networkDatagramBytes);
    const { files, loaded } = LogFiles.open({ fs: options.fileSystem ?? nodeFileSystem, dir: options.dataDir, serverId: id, serverCount: config.servers.length, wallClockMs: Date.now() });
    const daemon = new Daemon(options, files);
    try {
      daemon.transport = await UdpTransport.open(
        me,
        { incarnation: files.incarnation, key: options.clusterKey, maxReceiveBytes: receiveLimitBytes(maxDatagramBytes), maxDatagramBytes },
        config.servers,
        (packet) => daemon.onPacket(packet),
        (reason, detail, from) => daemon.onDrop(reason, detail, from),
      );
      // Faults that survive relaunches hold from the first packet the node sends (and are logged once it has started).
      if (options.faults) daemon.transport.faults.set(options.faults);
    } catch (err) {
      daemon.unwatchDisk();
      files.abandon();
      throw err;
    }
    const engine = engineOptions(id, config.servers.length, options.timers);
    daemon.statusIntervalMs = engine.statusIntervalMs;
    try {
      daemon.core = Node.recover({
        options: {
          engine,
          snapshotJournalBytes: options.snapshotJournalBytes ?? defaultSnapshotJournalBytes,
          snapshotIntervalMs: options.snapshotIntervalMs ?? defaultSnapshotIntervalMs,
        },
        loaded,
        journal: journalPort(files, daemon.timings, (action) => daemon.protect(action)),
        transport: daemon.world.transport,
        clock: daemon.world.clock,
        application: options.application ?? ((saved) => new OrderDigest(saved)),
        events: daemon.nodeEvents,
      });
    } catch (err) {
      daemon.stopped = true;
      daemon.unwatchDisk();
      clearTimeout(daemon.timer);
      daemon.timings.stop();
      await daemon.transport.close();
      files.abandon();
      throw err;
    }
    if (loaded.tornTail) {
      logger.warn(`dropped a torn last line of ${loaded.journalFile} (line ${loaded.tornTail.line}, ${loaded.tornTail.bytes} bytes): a crash cut it short before it was durable`);
    }
    const state = daemon.core.protocol;
    if (loaded.snapshot || loaded.records.length > 0) {
      logger.info(
        `recovered from ${options.dataDir}: snapshot generation ${loaded.generation}${loaded.snapshot ? '' : ' (none)'}, ` +
          `${loaded.records.length} journal records; own seq ${state.seqVector[id - 1]}, clock ${state.clock}, ` +
          `stable point ${state.stableTs}, ${state.storeCount} messages retained, ${state.unstableCount} tentative`,
      );
    }
    daemon.startedText = `server ${id} of ${config.servers.length}: UDP ${me.host}:${me.udpPort}, data ${options.dataDir}, datagrams up to ${maxDatagramBytes} bytes`;
    return daemon;
  }

  /** Say in the log that the server runs (its owner calls this once its own ports are open too), and which injected faults it kept. */
  announceStarted(more = ''): void {
    this.logger.info(`started ${this.startedText}${more === '' ? '' : `, ${more}`}`);
    const faults = describeFaults(this.transport.faults.current);
    if (faults !== '') this.logger.warn(`injected faults kept from before this start: ${faults}`);
  }

  /** The node's ports in this world: UDP, and the event loop. */
  private readonly world: { transport: Transport; clock: Clock } = {
    transport: {
      send: (to, packet) => {
        if (this.logsPackets) this.logger.debug(`send to ${to.join(',')}: ${describePacket(packet)}`);
        this.transport.send(to, packet);
      },
    },
    clock: {
      now,
      stepSoon: () => {
        if (this.stepScheduled) return;
        this.stepScheduled = true;
        setImmediate(() => {
          this.stepScheduled = false;
          this.timings.step(() => this.guarded(() => this.core.step()));
          this.observeStability();
        });
      },
      wakeAt: (at) => {
        clearTimeout(this.timer);
        const delay = Math.min(Math.max(at - now(), 0), this.statusIntervalMs);
        this.timer = setTimeout(() => {
          this.timings.step(() => this.guarded(() => this.core.tick()));
          this.observeStability();
        }, delay);
      },
    },
  };

  /** Own operations whose stability points passed: timed (see timings.ts). */
  private observeStability(): void {
    if (this.stopped) return;
    const p = this.core.protocol;
    this.timings.observe(p.stableTs, p.stableEverywhereTs, now());
  }

  private readonly nodeEvents: NodeEvents = {
    confirmed: (message, submittedAt) => this.timings.confirmed(message.ts, submittedAt, now()),
    applied: (ordered, stable) => {
      if (ordered) this.emit('ordered', ordered);
      if (stable.length > 0) this.emit('stable', stable);
    },
    view: (view) => {
      this.logger.info(`view changed: {${view.join(',')}}`);
      this.emit('view', view);
    },
    storageFailed: (error) => this.storageFailed(error),
  };

  /** The node core this daemon runs (the chat port submits to it). */
  get node(): Node {
    return this.core;
  }

  // ---- the application's interface ------------------------------------------------

  /** Broadcast a payload; resolves with its (seq, ts) once it is durable here. */
  submit(payload: string): Promise<Message> {
    return new Promise((confirmed, refused) => this.core.submit(payload, { confirmed, refused }));
  }

  get view(): readonly ServerId[] {
    return this.core.view;
  }

  /** Injected network faults of this daemon (partitions, loss). */
  get faults(): FaultFilter {
    return this.transport.faults;
  }

  /** Inject faults (or clear them with empty settings), and say so in the log. */
  setFaults(settings: FaultSettings): void {
    this.transport.faults.set(settings);
    const faults = describeFaults(settings);
    if (faults === '') this.logger.info('injected faults cleared');
    else this.logger.warn(`injected faults: ${faults}`);
  }

  /** Messages not yet stable, in the current total order. */
  tentative(): Message[] {
    return this.core.protocol.tentative();
  }

  /** The daemon's state for tools; `withDigest: false` skips the application's digest (for frequent polls). */
  status(withDigest = true): DaemonStatus {
    const p = this.core.protocol;
    const storageError = this.core.storageError;
    return {
      id: this.id,
      pid: process.pid,
      view: p.view,
      clock: p.clock,
      seqVector: p.seqVector,
      tsVector: p.tsVector,
      seqMatrix: p.seqMatrix,
      tsMatrix: p.tsMatrix,
      stableTs: p.stableTs,
      stableEverywhereTs: p.stableEverywhereTs,
      unstable: p.unstableCount,
      retained: p.storeCount,
      queued: p.queuedCount,
      buffered: p.bufferedCount,
      digest: withDigest ? this.core.app.digest() : '',
      incarnation: this.files.incarnation,
      ...(storageError === undefined ? {} : { storageError }),
      engine: { ...p.counters },
      transport: structuredClone(this.transport.counters),
      journal: { bytes: this.files.journalBytes, records: this.files.journalRecords, syncs: this.files.syncs },
      timings: this.timings.read(false),
    };
  }

  /** Clean shutdown: a last step, a snapshot, the socket and the files closed. `failedStart` says why a server that never announced itself stops. */
  async stop(failedStart?: string): Promise<void> {
    if (this.stopped) return;
    const failed = this.core.storageError !== undefined;
    this.stopped = true;
    this.unwatchDisk();
    clearTimeout(this.timer);
    this.timings.stop();
    try {
      await new Promise<void>((resolve, reject) => this.core.stop((error) => (error ? reject(error) : resolve())));
    } finally {
      await this.transport.close().catch(() => undefined);
    }
    if (failedStart !== undefined) this.logger.error(`server ${this.id} did not start: ${failedStart}`);
    else this.logger.info(failed ? `stopped server ${this.id}; its log files hold everything up to the storage failure` : `stopped server ${this.id} cleanly`);
  }

  /** Stop as a crash would: nothing pending is written, no snapshot. For tests. */
  async crash(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    this.timings.stop();
    this.core.crash();
    await this.transport.close().catch(() => undefined);
  }

  // ---- event handling -----------------------------------------------------------------

  private onPacket(packet: Packet): void {
    if (this.stopped) return;
    if (this.logsPackets) this.logger.debug(`recv ${describePacket(packet)}`);
    const counters = this.core.protocol.counters;
    const inconsistentBefore = counters.inconsistent;
    this.guarded(() => this.core.receive(packet));
    if (counters.inconsistent > inconsistentBefore) this.warnInconsistent(packet.from);
  }

  /** Only a faulty server holding the cluster key sends these; say so, at most every few seconds. */
  private warnInconsistent(from: ServerId): void {
    const at = now();
    if (at - this.lastInconsistentWarningAt < dropWarningIntervalMs) return;
    this.lastInconsistentWarningAt = at;
    this.logger.error(
      `refused messages relayed by server ${from} that no correct server could have sent (timestamp not after the sender's previous, or behind the stable point); ` +
        `${this.core.protocol.counters.inconsistent} so far: is a server faulty?`,
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

  /** Run a node input or step; a broken invariant stops the daemon. */
  private guarded(action: () => void): void {
    if (this.stopped) return;
    this.protect(action);
  }

  /** Run node code (also while a clean stop waits for the disk); a broken invariant stops the daemon. */
  private protect(action: () => void): void {
    try {
      action();
    } catch (err) {
      this.fail(err as Error);
    }
  }

  private storageFailed(error: ChorusError): void {
    this.logger.error(`${error.message}; accepting no operations until restarted (fix the disk, then tools/cluster kill ${this.id} and relaunch ${this.id})`);
    clearTimeout(this.timer);
    void this.transport.close().catch(() => undefined);
  }

  /** An invariant broke: stop at once; restart and recovery are the designed path. */
  private fail(err: Error): void {
    this.logger.error(`stopping: ${err.message}`);
    this.stopped = true;
    clearTimeout(this.timer);
    this.timings.stop();
    void this.transport.close().catch(() => undefined);
    try {
      this.core.crash();
    } catch {
      // The files are already unusable; the error above says why.
    }
    this.emit('fatal', err);
  }
}

/**
 * The log files as the node's journal, each group commit timed. A sync may
 * finish outside any step (the log files pipeline them), so what the node
 * does then runs under `protect` as every other input does.
 */
function journalPort(files: LogFiles, timings: DaemonTimings, protect: (action: () => void) => void): Journal {
  return {
    append: (records) => files.append(records),
    sync: (done) => {
      const durable = timings.syncStarted();
      files.sync((error) => {
        durable();
        protect(() => done(error));
      });
    },
    get idle() {
      return files.idle;
    },
    beginSnapshot: (engine, app, done, appDurable) => files.beginSnapshot(engine, app, (error) => protect(() => done(error)), (ready) => appDurable((error) => protect(() => ready(error)))),
    continueSnapshot: () => files.continueSnapshot(),
    get snapshotInProgress() {
      return files.snapshotInProgress;
    },
    writeSnapshot: (engine, app) => files.writeSnapshot(engine, app),
    get journalBytes() {
      return files.journalBytes;
    },
    get journalRecords() {
      return files.journalRecords;
    },
    get snapshotBytes() {
      return files.snapshotBytes;
    },
    get syncs() {
      return files.syncs;
    },
    close: () => files.close(),
    abandon: () => files.abandon(),
  };
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

