/**
 * What differs between the worlds a node runs in. The daemon plugs in the
 * real log files, UDP and the event loop's timers; the simulator the same
 * log files on a simulated disk, an in-memory network and simulated time.
 * Everything else of a running server is the node (node.ts), the same in both.
 */
import type { EngineState } from '../broadcast/recovery.js';
import type { JournalRecord, Packet, ServerId } from '../broadcast/types.js';
import type { ChorusError } from '../errors.js';
import type { DurableWhen } from '../storage/fileSystem.js';

export type { DurableWhen };

/** The log files (storage/logFiles.ts implements this). */
export interface Journal {
  /** Queue records; nothing is durable until a sync says so. */
  append(records: readonly JournalRecord[]): void;
  /**
   * Make every queued record durable, then call `done` (at once, or later;
   * syncs finish in the order they were asked for). With an error the
   * records are not durable and must never be acted on.
   */
  sync(done: (error?: ChorusError) => void): void;
  /** Nothing queued and no sync in flight. */
  readonly idle: boolean;
  /**
   * Begin replacing the journal by a snapshot of this state (only when idle,
   * and no other is in progress): later records go to a new journal at once,
   * the snapshot is written by continueSnapshot() a slice at a time, and
   * `done` runs once it is durable and installed (never before `appDurable`
   * reports what the application stored durable), or with the error.
   * Throws a STORAGE_FAILED ChorusError.
   */
  beginSnapshot(engine: EngineState, app: unknown, done: (error?: ChorusError) => void, appDurable: DurableWhen): void;
  /** Write the next slice of the snapshot in progress; true while more remains. Throws a STORAGE_FAILED ChorusError. */
  continueSnapshot(): boolean;
  /** A snapshot begun is not yet durable. */
  readonly snapshotInProgress: boolean;
  /** Replace the journal by a snapshot of this state at once; only when idle (a clean stop). Throws a STORAGE_FAILED ChorusError. */
  writeSnapshot(engine: EngineState, app: unknown): void;
  /** Bytes and records in the current journal, and syncs so far (for status and the snapshot policy). */
  readonly journalBytes: number;
  /** Size of the last snapshot written: the journal may grow as large before the next (the snapshot policy). */
  readonly snapshotBytes: number;
  readonly journalRecords: number;
  readonly syncs: number;
  /** Close after a clean stop (idle). */
  close(): void;
  /** Close as a crash would: what is queued is lost. */
  abandon(): void;
}

/** Sends packets to peers (the wire layer splits data packets into datagrams). Never throws; a lost packet is the protocol's business. */
export interface Transport {
  /** Send the same packet to each of `to` (several at once: the daemon seals it once for all). */
  send(to: readonly ServerId[], packet: Packet): void;
}

/** Time, and the two things a node asks of time. */
export interface Clock {
  /** The current time in milliseconds (only differences matter). */
  now(): number;
  /** Run node.step() soon: after the current input, so that a burst of inputs costs one step (and one fsync). */
  stepSoon(): void;
  /** Call node.tick() at time `at` (replacing the previous request). */
  wakeAt(at: number): void;
}
