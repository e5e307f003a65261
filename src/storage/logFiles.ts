/**
 * A daemon's log files (docs/spec.md section 3), in its data directory:
 *
 *   snapshot.json          the state after some point, written atomically
 *                          (temp file, fsync, rename, fsync of the directory)
 *   journal.<g>.jsonl      JSON lines appended after snapshot generation g;
 *                          while snapshot g+1 is being written the server
 *                          already appends to journal.<g+1>.jsonl
 *   LOCK                   the pid of the daemon using the directory
 *   incarnation            this run's number, later than every earlier run's:
 *                          it names the run in each datagram (wire/replayGuard.ts)
 *
 * Appends are buffered and made durable together by sync(): one write and
 * one fdatasync for everything queued (group commit). A snapshot starts a
 * new journal generation at once and is written in slices between steps
 * (snapshotWriter.ts), so a large state never blocks the server; the older
 * journals are deleted only once the new snapshot is durable, so a crash at
 * any point leaves a snapshot and the journals that continue it, in order
 * (logReader.ts reads them back).
 *
 * All file access goes through a FileSystem (fileSystem.ts): the real disk
 * in the daemon, a simulated one in the simulator.
 */
import { join } from 'node:path';
import type { EngineState } from '../broadcast/recovery.js';
import type { JournalRecord } from '../broadcast/types.js';
import { ChorusError, invariant } from '../errors.js';
import type { DurableWhen, FileHandle, FileSystem } from './fileSystem.js';
import { journalName, listJournals, readLogFiles, readText, snapshotName, type LoadedLog } from './logReader.js';
import { LineBuffer } from './lineBuffer.js';
import { journalLine, snapshotFormat, snapshotVersion, type SnapshotFile } from './records.js';
import { snapshotSliceChars, SnapshotWriter } from './snapshotWriter.js';

export const incarnationName = 'incarnation';
const snapshotTempPattern = /^snapshot\.json\.(\d+\.)?tmp$/;

function snapshotTempName(generation: number): string {
  return `${snapshotName}.${generation}.tmp`;
}

interface SnapshotInProgress {
  readonly writer: SnapshotWriter;
  readonly generation: number;
  readonly done: (error?: ChorusError) => void;
  /** The file is written and its sync runs. */
  syncing: boolean;
  /** Parts not yet durable: the file, and what the application stored. */
  waitingFor: number;
}

export interface LogFilesOptions {
  readonly fs: FileSystem;
  readonly dir: string;
  readonly serverId: number;
  readonly serverCount: number;
  /** The wall clock, in ms: a run number is never below it (see beginIncarnation). */
  readonly wallClockMs: number;
}

export class LogFiles {
  private fd: FileHandle;
  /** The lines appended since the last write. */
  private readonly pending = new LineBuffer();
  /** The current journal's generation: the snapshot being written, if any, or the last one written. */
  private generation: number;
  /** A snapshot being written in slices (beginSnapshot), and whom to tell when it is durable. */
  private snapshotting: SnapshotInProgress | undefined;
  /** An fdatasync is running; at most one at a time, so they finish in the order asked for. */
  private syncing = false;
  /** The current journal's name is durable (a new generation's is made so with its first sync). */
  private journalNameDurable = true;
  /** Callers of sync() whose records go into the next write and fdatasync. */
  private waiting: ((error?: ChorusError) => void)[] = [];
  /** This run of the daemon: see beginIncarnation. */
  incarnation = 0;
  /** Bytes in the journals a snapshot will replace (after a restart, all those replayed), durable or pending. */
  journalBytes = 0;
  /** Bytes in the current journal known to be durable. */
  private durableBytes = 0;
  /** Bytes written to the current journal (durable or not). */
  private writtenBytes = 0;
  journalRecords = 0;
  syncs = 0;
  /** Size of the last snapshot written (or found on open). */
  snapshotBytes = 0;

  private constructor(
    private readonly options: LogFilesOptions,
    loaded: LoadedLog,
  ) {
    this.generation = loaded.generation + Math.max(0, loaded.journals.length - 1);
    this.fd = options.fs.open(loaded.journalFile, 'append');
    this.journalRecords = loaded.records.length;
  }

  private get fs(): FileSystem {
    return this.options.fs;
  }

  private get dir(): string {
    return this.options.dir;
  }

  /**
   * Open a data directory for a daemon: take its lock, read and validate it,
   * cut a torn last line off the journal (the warning is the caller's), and
   * remove journals and temporary files a crash left behind during a snapshot.
   */
  static open(options: LogFilesOptions): { files: LogFiles; loaded: LoadedLog } {
    const { fs, dir, serverId, serverCount } = options;
    try {
      fs.makeDir(dir);
    } catch (err) {
      throw new ChorusError('STORAGE_FAILED', `${dir}: cannot create data directory: ${(err as Error).message}`);
    }
    try {
      fs.lock(dir);
    } catch (err) {
      if (err instanceof ChorusError) throw err;
      throw new ChorusError('STORAGE_FAILED', `${dir}: cannot write the data directory: ${(err as Error).message}`);
    }
    try {
      const loaded = readLogFiles(fs, dir, serverId, serverCount);
      if (loaded.tornTail) truncateFile(fs, loaded.journalFile, loaded.tornTail.offset);
      for (const stale of loaded.staleJournals) fs.unlink(stale);
      for (const name of fs.list(dir)) if (snapshotTempPattern.test(name)) fs.unlink(join(dir, name));
      const files = new LogFiles(options, loaded);
      files.incarnation = beginIncarnation(fs, dir, options.wallClockMs);
      const lastBytes = loaded.tornTail ? loaded.tornTail.offset : fs.size(loaded.journalFile);
      files.durableBytes = lastBytes;
      files.writtenBytes = lastBytes;
      files.journalBytes = loaded.journals.slice(0, -1).reduce((total, j) => total + fs.size(j.file), lastBytes);
      files.snapshotBytes = fs.size(join(dir, snapshotName));
      return { files, loaded };
    } catch (err) {
      fs.unlock(dir);
      if (err instanceof ChorusError) throw err;
      throw new ChorusError('STORAGE_FAILED', `${dir}: ${(err as Error).message}`);
    }
  }

  /** Queue records; they are durable once a later sync() reports so. */
  append(records: readonly JournalRecord[]): void {
    for (const record of records) {
      this.journalBytes += this.pending.add(journalLine(record));
    }
    this.journalRecords += records.length;
  }

  /** Nothing queued, and every sync finished: everything appended is durable. */
  get idle(): boolean {
    return this.pending.bytes === 0 && !this.syncing && this.waiting.length === 0;
  }

  /**
   * Group commit, pipelined: one write of everything queued, then one
   * fdatasync; `done` runs once it is durable, or with the error (a full
   * disk, a read-only file system) saying which file. While an fdatasync
   * runs (off the event loop on the real disk), what is appended meanwhile
   * waits and goes into the next write, so a slow disk makes the batches
   * larger instead of stalling the server. After an error the records were
   * not made durable and must not be acted on; the partly written tail is
   * cut off where that is possible.
   */
  sync(done: (error?: ChorusError) => void): void {
    this.waiting.push(done);
    if (!this.syncing) this.writeAndSync();
  }

  private writeAndSync(): void {
    const dones = this.waiting;
    this.waiting = [];
    const data = this.pending.view();
    try {
      let written = 0;
      while (written < data.length) written += this.fs.write(this.fd, data.subarray(written));
    } catch (err) {
      this.pending.clear();
      this.cutBackTo(this.durableBytes);
      const error = storageFailed(`${this.journalFile}: cannot write the journal`, err);
      for (const done of dones) done(error);
      return;
    }
    this.writtenBytes += data.length;
    this.pending.clear();
    const upTo = this.writtenBytes;
    const generation = this.generation;
    // A new journal's name is made durable with its first records, off the event loop too.
    const nameToo = !this.journalNameDurable;
    this.syncing = true;
    this.fs.fdatasync(this.fd, (fault) => {
      if (fault || !nameToo || this.fd < 0) return this.synced(dones, upTo, generation, fault);
      this.fs.syncDirInBackground(this.dir, (dirFault) => {
        if (!dirFault && generation === this.generation) this.journalNameDurable = true;
        this.synced(dones, upTo, generation, dirFault);
      });
    });
  }

  private synced(dones: readonly ((error?: ChorusError) => void)[], upTo: number, generation: number, fault: Error | undefined): void {
    this.syncing = false;
    if (this.fd < 0) return; // closed as a crash would, meanwhile
    let error: ChorusError | undefined;
    if (fault) {
      this.cutBackTo(this.durableBytes);
      error = storageFailed(`${this.journalFile}: cannot write the journal`, fault);
    } else {
      if (generation === this.generation) this.durableBytes = Math.max(this.durableBytes, upTo);
      this.syncs++;
    }
    for (const done of dones) done(error);
    if (this.waiting.length > 0 && !this.syncing && this.fd >= 0) this.writeAndSync();
  }

  private get journalFile(): string {
    return join(this.dir, journalName(this.generation));
  }

  /** Best effort: a torn tail is also dropped on the next start, so failing here loses nothing. */
  private cutBackTo(length: number): void {
    try {
      this.fs.truncate(this.fd, length);
      this.writtenBytes = length;
    } catch {
      // A read-only file system refuses this too; recovery drops the torn tail.
    }
  }

  /** A snapshot begun with beginSnapshot is still being written or made durable. */
  get snapshotInProgress(): boolean {
    return this.snapshotting !== undefined;
  }

  /**
   * Begin a snapshot of this state (everything appended so far; only when
   * idle): the journal continues in a new generation at once, and the
   * snapshot is written by continueSnapshot() a slice at a time, then made
   * durable off the event loop, as is what the application stored that the
   * state counts on (`appDurable`). Once both are, the snapshot replaces the
   * older one (its rename made durable off the event loop too) and the older
   * journals go; then `done` runs, or with the error. Throws a STORAGE_FAILED
   * ChorusError if the new journal cannot be started.
   */
  beginSnapshot(engine: EngineState, app: unknown, done: (error?: ChorusError) => void, appDurable: DurableWhen = (ready) => ready()): void {
    invariant(this.idle && !this.snapshotting, 'a snapshot is begun only when every journal record is durable and no other snapshot is being written');
    let snapshot: SnapshotInProgress;
    try {
      const generation = this.startGeneration('with its first records');
      snapshot = { writer: this.snapshotWriter(generation, engine, app), generation, done, syncing: false, waitingFor: 2 };
    } catch (err) {
      throw storageFailed(`${this.dir}: cannot write a snapshot`, err);
    }
    this.snapshotting = snapshot;
    appDurable((error) => this.partDurable(snapshot, error));
  }

  /** Write the next slice of the snapshot begun; true while more remains to write. Throws a STORAGE_FAILED ChorusError. */
  continueSnapshot(): boolean {
    const snapshot = this.snapshotting;
    if (!snapshot || snapshot.syncing) return false;
    try {
      if (!snapshot.writer.write(snapshotSliceChars)) return true;
    } catch (err) {
      this.cancelSnapshot();
      throw storageFailed(`${this.dir}: cannot write a snapshot`, err);
    }
    snapshot.syncing = true;
    snapshot.writer.syncInBackground((error) => this.partDurable(snapshot, error));
    return false;
  }

  /** The snapshot file, or what the application stored, is durable (or failed); once both are, the snapshot is installed. */
  private partDurable(snapshot: SnapshotInProgress, error: Error | undefined): void {
    if (this.snapshotting !== snapshot) return; // given up meanwhile: closed, crashed, failed, or replaced by a snapshot written at once
    if (error) return this.snapshotFailed(snapshot, error);
    if (--snapshot.waitingFor > 0) return;
    try {
      this.fs.rename(snapshot.writer.tempFile, join(this.dir, snapshotName));
    } catch (err) {
      return this.snapshotFailed(snapshot, err as Error);
    }
    this.fs.syncDirInBackground(this.dir, (fault) => this.installed(snapshot, fault));
  }

  /** The snapshot's rename is durable: the journals before it can go. */
  private installed(snapshot: SnapshotInProgress, fault: Error | undefined): void {
    if (this.snapshotting !== snapshot) return;
    if (fault) return this.snapshotFailed(snapshot, fault);
    this.snapshotting = undefined;
    this.snapshotBytes = snapshot.writer.bytes;
    try {
      this.removeJournalsBefore(snapshot.generation);
    } catch (err) {
      return snapshot.done(storageFailed(`${this.dir}: cannot write a snapshot`, err));
    }
    snapshot.done();
  }

  private snapshotFailed(snapshot: SnapshotInProgress, error: Error): void {
    this.cancelSnapshot();
    snapshot.done(storageFailed(`${this.dir}: cannot write a snapshot`, error));
  }

  /**
   * Write a snapshot of everything up to now at once and continue with a
   * fresh journal; only when idle (a clean stop, tests). A snapshot being
   * written in slices is given up. A failure at any step leaves the old
   * snapshot and journals, or the new snapshot alone, both complete; the
   * caller must not write again.
   */
  writeSnapshot(engine: EngineState, app: unknown): void {
    invariant(this.idle, 'a snapshot is written only when every journal record is durable');
    this.cancelSnapshot();
    try {
      const generation = this.startGeneration('now');
      const writer = this.snapshotWriter(generation, engine, app);
      try {
        writer.write(Infinity);
        writer.syncNow();
      } finally {
        writer.close();
      }
      this.install(writer, generation);
    } catch (err) {
      throw storageFailed(`${this.dir}: cannot write a snapshot`, err);
    }
  }

  /** Continue in journal generation+1, its name durable before anything written to it is: now, or with its first records' sync. */
  private startGeneration(nameDurable: 'now' | 'with its first records'): number {
    const { fs, dir } = this.options;
    const generation = this.generation + 1;
    const newFd = fs.open(join(dir, journalName(generation)), 'append');
    if (nameDurable === 'now') fs.syncDir(dir);
    fs.close(this.fd);
    this.fd = newFd;
    this.generation = generation;
    this.journalNameDurable = nameDurable === 'now';
    this.journalBytes = 0;
    this.durableBytes = 0;
    this.writtenBytes = 0;
    this.journalRecords = 0;
    return generation;
  }

  private snapshotWriter(generation: number, engine: EngineState, app: unknown): SnapshotWriter {
    const { fs, dir, serverId, serverCount } = this.options;
    const snapshot: SnapshotFile = { format: snapshotFormat, version: snapshotVersion, serverId, serverCount, generation, engine, app };
    return new SnapshotWriter(fs, join(dir, snapshotTempName(generation)), snapshot);
  }

  /** The durable snapshot of `generation` replaces the old one; then the journals before it go. */
  private install(writer: SnapshotWriter, generation: number): void {
    const { fs, dir } = this.options;
    fs.rename(writer.tempFile, join(dir, snapshotName));
    this.snapshotBytes = writer.bytes;
    fs.syncDir(dir);
    this.removeJournalsBefore(generation);
  }

  private removeJournalsBefore(generation: number): void {
    const { fs, dir } = this.options;
    for (const g of listJournals(fs, dir)) if (g < generation) fs.unlink(join(dir, journalName(g)));
  }

  /** Give up the snapshot being written, if any; the journals it would have replaced stay. */
  private cancelSnapshot(): void {
    const snapshot = this.snapshotting;
    this.snapshotting = undefined;
    snapshot?.writer.close();
  }

  /** Close after a clean stop: everything appended must be durable by now. */
  close(): void {
    invariant(this.idle, 'the journal is closed only when every record is durable');
    this.release();
  }

  /** Close without making what is queued durable: what a crash does (after a storage failure, and in tests). */
  abandon(): void {
    this.pending.clear();
    this.waiting = [];
    this.release();
  }

  private release(): void {
    this.cancelSnapshot();
    if (this.fd < 0) return;
    this.fs.close(this.fd);
    this.fd = -1;
    this.fs.unlock(this.dir);
  }
}

/**
 * The number of this run: one more than the last run's, or the wall clock in
 * milliseconds if that is later (so a server whose directory was wiped still
 * starts a later run). Durable before the daemon sends anything.
 */
function beginIncarnation(fs: FileSystem, dir: string, wallClockMs: number): number {
  const file = join(dir, incarnationName);
  let previous = 0;
  if (fs.exists(file)) {
    previous = Number(readText(fs, file).trim());
    if (!Number.isSafeInteger(previous) || previous < 0) throw new ChorusError('LOG_CORRUPT', `${file}:1: not a run number`);
  }
  const next = Math.max(previous + 1, Math.floor(wallClockMs));
  replaceFile(fs, file, `${next}\n`);
  fs.syncDir(dir);
  return next;
}

/** Replace a file atomically: temp file, fsync, rename (the caller syncs the directory). */
function replaceFile(fs: FileSystem, file: string, text: string): void {
  const temp = `${file}.tmp`;
  const fd = fs.open(temp, 'truncate');
  try {
    const data = Buffer.from(text);
    let written = 0;
    while (written < data.length) written += fs.write(fd, data.subarray(written));
    fs.fsync(fd);
  } finally {
    fs.close(fd);
  }
  fs.rename(temp, file);
}

function storageFailed(what: string, err: unknown): ChorusError {
  return new ChorusError('STORAGE_FAILED', `${what}: ${(err as Error).message}`);
}

function truncateFile(fs: FileSystem, file: string, length: number): void {
  const fd = fs.open(file, 'append');
  try {
    fs.truncate(fd, length);
    fs.fsync(fd);
  } finally {
    fs.close(fd);
  }
}
